terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.10"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Keep the state in an encrypted remote backend with restricted access: it holds the
  # generated JWT secret and Redis auth token. For example:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "chatx/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}
