variable "region" {
  type        = string
  description = "AWS region of the deployment."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name" {
  type        = string
  description = "Name prefix of every resource."
  default     = "chatx"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_id" {
  type        = string
  description = "Existing VPC."

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Public subnets of the load balancer (two or more zones)."

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "Give at least two public subnets."
  }
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets with outbound access (NAT or VPC endpoints) for the tasks and data stores (three zones recommended)."

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Give at least two private subnets."
  }
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate of the service's host name, for the HTTPS listener."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "image" {
  type        = string
  description = "ChatX image pushed to a registry the tasks can pull from, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/chatx:0.1.0."

  validation {
    condition     = length(var.image) > 0 && !endswith(var.image, ":latest")
    error_message = "image must be set, with an explicit tag or digest (not latest)."
  }
}

variable "cpu_architecture" {
  type        = string
  description = "ARM64 or X86_64: the platform the image was built for."
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.cpu_architecture)
    error_message = "cpu_architecture must be ARM64 or X86_64."
  }
}

variable "allowed_origins" {
  type        = list(string)
  description = "Browser origins allowed to open WebSockets (CHATX_ALLOWED_ORIGINS), e.g. [\"https://chat.example.com\"]."
  default     = []

  validation {
    condition     = alltrue([for o in var.allowed_origins : can(regex("^https?://", o))])
    error_message = "Each origin must start with http:// or https://."
  }
}

variable "gateway_min_count" {
  type        = number
  description = "Fewest gateway tasks."
  default     = 2

  validation {
    condition     = var.gateway_min_count >= 1
    error_message = "gateway_min_count must be at least 1."
  }
}

variable "gateway_max_count" {
  type        = number
  description = "Most gateway tasks."
  default     = 20

  validation {
    condition     = var.gateway_max_count >= var.gateway_min_count
    error_message = "gateway_max_count must be at least gateway_min_count."
  }
}

variable "worker_min_count" {
  type        = number
  description = "Fewest worker tasks."
  default     = 1

  validation {
    condition     = var.worker_min_count >= 1
    error_message = "worker_min_count must be at least 1."
  }
}

variable "worker_max_count" {
  type        = number
  description = "Most worker tasks."
  default     = 4

  validation {
    condition     = var.worker_max_count >= var.worker_min_count
    error_message = "worker_max_count must be at least worker_min_count."
  }
}

variable "db_multi_az" {
  type        = bool
  description = "Multi-AZ PostgreSQL."
  default     = true

  validation {
    condition     = var.db_multi_az != null
    error_message = "db_multi_az must be true or false."
  }
}

variable "nats_url" {
  type        = string
  description = "Existing NATS JetStream URL(s); empty creates a 3-node cluster on EC2."
  default     = ""

  validation {
    condition     = var.nats_url == "" || can(regex("^(nats|tls)://", var.nats_url))
    error_message = "nats_url must be empty or start with nats:// or tls://."
  }
}

variable "nats_external_cidrs" {
  type        = list(string)
  description = "With nats_url: address ranges of that NATS (port 4222)."
  default     = []

  validation {
    condition     = alltrue([for c in var.nats_external_cidrs : can(cidrnetmask(c))])
    error_message = "nats_external_cidrs must be IPv4 CIDR blocks."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags of every resource."
  default     = {}

  validation {
    condition     = length(var.tags) <= 40
    error_message = "At most 40 tags."
  }
}
