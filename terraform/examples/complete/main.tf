# A complete ChatX deployment in an existing VPC: ALB, autoscaled gateway and worker
# services on Fargate, ElastiCache Redis, RDS PostgreSQL and a 3-node NATS JetStream
# cluster (or an existing NATS with nats_url).

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      ManagedBy = "terraform"
    }
  }
}

module "chatx" {
  source = "../../modules/chatx"

  name               = var.name
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  certificate_arn    = var.certificate_arn
  image              = var.image
  cpu_architecture   = var.cpu_architecture
  allowed_origins    = var.allowed_origins

  gateway_min_count = var.gateway_min_count
  gateway_max_count = var.gateway_max_count
  worker_min_count  = var.worker_min_count
  worker_max_count  = var.worker_max_count

  db_multi_az = var.db_multi_az
  nats_url    = var.nats_url

  nats_external_cidrs = var.nats_external_cidrs

  tags = var.tags
}
