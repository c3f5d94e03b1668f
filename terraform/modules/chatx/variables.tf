# ---------------------------------------------------------------------------------------
# Naming and placement
# ---------------------------------------------------------------------------------------

variable "name" {
  type        = string
  description = "Name prefix of every resource (lower-case letters, digits and dashes)."
  default     = "chatx"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters: a lower-case letter, then lower-case letters, digits or dashes."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource that takes tags."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.tags : length(k) <= 128 && length(v) <= 256])
    error_message = "Tag keys must be at most 128 and values at most 256 characters."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC that holds every resource of the deployment."

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Subnets of the load balancer (public for an internet-facing ALB), in at least two availability zones."

  validation {
    condition     = length(var.public_subnet_ids) >= 2 && alltrue([for s in var.public_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "Give at least two subnet ids (subnet-...)."
  }
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets (with a NAT gateway or VPC endpoints for ECR, Secrets Manager, CloudWatch Logs and SSM) for the tasks, Redis, PostgreSQL and NATS; at least two availability zones, three recommended for the NATS cluster."

  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "Give at least two subnet ids (subnet-...)."
  }
}

# ---------------------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------------------

variable "certificate_arn" {
  type        = string
  description = "ACM certificate of the HTTPS listener."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "alb_internal" {
  type        = bool
  description = "Create an internal load balancer instead of an internet-facing one."
  default     = false

  validation {
    condition     = var.alb_internal != null
    error_message = "alb_internal must be true or false."
  }
}

variable "alb_ingress_cidrs" {
  type        = list(string)
  description = "IPv4 ranges allowed to reach the load balancer on ports 80 (redirect only) and 443."
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.alb_ingress_cidrs) > 0 && alltrue([for c in var.alb_ingress_cidrs : can(cidrnetmask(c))])
    error_message = "alb_ingress_cidrs must be a non-empty list of IPv4 CIDR blocks."
  }
}

variable "alb_ssl_policy" {
  type        = string
  description = "TLS policy of the HTTPS listener (TLS 1.2 or newer)."
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = can(regex("^ELBSecurityPolicy-(TLS13|TLS-1-2|FS-1-2)", var.alb_ssl_policy))
    error_message = "Use an ELBSecurityPolicy that allows TLS 1.2 and newer only."
  }
}

variable "alb_idle_timeout" {
  type        = number
  description = "ALB idle timeout in seconds. It must stay above the gateway's WebSocket ping interval (ping_interval_secs), or idle sockets are cut by the ALB."
  default     = 120

  validation {
    condition     = var.alb_idle_timeout > var.ping_interval_secs && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be above ping_interval_secs and at most 4000."
  }
}

variable "alb_deletion_protection" {
  type        = bool
  description = "Protect the load balancer against deletion."
  default     = true

  validation {
    condition     = var.alb_deletion_protection != null
    error_message = "alb_deletion_protection must be true or false."
  }
}

variable "alb_access_logs_bucket" {
  type        = string
  description = "Existing S3 bucket for ALB access logs (its policy must allow the ELB log delivery); empty disables access logs."
  default     = ""

  validation {
    condition     = var.alb_access_logs_bucket == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.alb_access_logs_bucket))
    error_message = "alb_access_logs_bucket must be empty or an S3 bucket name."
  }
}

variable "web_acl_arn" {
  type        = string
  description = "Existing WAFv2 web ACL (REGIONAL) to associate with the load balancer; empty for none."
  default     = ""

  validation {
    condition     = var.web_acl_arn == "" || can(regex("^arn:aws[a-z-]*:wafv2:", var.web_acl_arn))
    error_message = "web_acl_arn must be empty or a WAFv2 web ACL ARN."
  }
}

# ---------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------

variable "image" {
  type        = string
  description = "ChatX image built from the repository's Dockerfile (holds gateway, worker and migration), as repository:tag or repository@sha256:digest. Not :latest."

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must carry an explicit tag (not latest) or a sha256 digest."
  }
}

variable "gateway_cpu" {
  type        = number
  description = "CPU units of a gateway task (Fargate: 256, 512, 1024, 2048, 4096, 8192 or 16384)."
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.gateway_cpu)
    error_message = "gateway_cpu must be a Fargate CPU size."
  }
}

variable "gateway_memory" {
  type        = number
  description = "Memory (MiB) of a gateway task; must be a valid Fargate pairing with gateway_cpu."
  default     = 2048

  validation {
    condition     = var.gateway_memory >= 512 && var.gateway_memory <= 122880
    error_message = "gateway_memory must be between 512 and 122880 MiB."
  }
}

variable "worker_cpu" {
  type        = number
  description = "CPU units of a worker task (Fargate sizes, as gateway_cpu)."
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.worker_cpu)
    error_message = "worker_cpu must be a Fargate CPU size."
  }
}

variable "worker_memory" {
  type        = number
  description = "Memory (MiB) of a worker task; must be a valid Fargate pairing with worker_cpu."
  default     = 1024

  validation {
    condition     = var.worker_memory >= 512 && var.worker_memory <= 122880
    error_message = "worker_memory must be between 512 and 122880 MiB."
  }
}

variable "cpu_architecture" {
  type        = string
  description = "CPU architecture of the Fargate tasks; the image must be built for it (docker buildx --platform linux/arm64 or linux/amd64)."
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.cpu_architecture)
    error_message = "cpu_architecture must be ARM64 or X86_64."
  }
}

# ---------------------------------------------------------------------------------------
# ChatX settings (exactly the names the binaries read: see README "Configuration")
# ---------------------------------------------------------------------------------------

variable "drain_secs" {
  type        = number
  description = "CHATX_DRAIN_SECS: window over which a gateway spreads reconnect notices after SIGTERM. The target group's deregistration delay and the container stop timeout are derived from it."
  default     = 10

  validation {
    condition     = var.drain_secs >= 1 && var.drain_secs <= 100
    error_message = "drain_secs must be between 1 and 100 (Fargate stops a container at most 120 s after SIGTERM)."
  }
}

variable "ping_interval_secs" {
  type        = number
  description = "CHATX_PING_INTERVAL_SECS: interval of the gateway's WebSocket pings."
  default     = 25

  validation {
    condition     = var.ping_interval_secs >= 5 && var.ping_interval_secs <= 300
    error_message = "ping_interval_secs must be between 5 and 300."
  }
}

variable "allowed_origins" {
  type        = list(string)
  description = "CHATX_ALLOWED_ORIGINS: Origins allowed for browser WebSocket upgrades (e.g. https://chat.example.com); empty means same host only."
  default     = []

  validation {
    condition     = alltrue([for o in var.allowed_origins : can(regex("^https?://[^/,\\s]+$", o))])
    error_message = "Each origin must be scheme://host[:port] without a path or comma."
  }
}

variable "extra_environment" {
  type        = map(string)
  description = "Further ChatX settings for gateways and workers, as CHATX_<FIELD> = value (for example CHATX_BCRYPT_COST). The module sets DATABASE_URL, REDIS_URL, NATS_URL, JWT_SECRET, BIND_ADDR, CHATX_TRUST_FORWARDED_FOR, CHATX_LOG_FORMAT, CHATX_DRAIN_SECS, CHATX_PING_INTERVAL_SECS and CHATX_ALLOWED_ORIGINS itself."
  default     = {}

  validation {
    condition = alltrue([for k, v in var.extra_environment : can(regex("^CHATX_[A-Z0-9_]+$", k)) && !contains(
      ["CHATX_TRUST_FORWARDED_FOR", "CHATX_LOG_FORMAT", "CHATX_DRAIN_SECS", "CHATX_PING_INTERVAL_SECS", "CHATX_ALLOWED_ORIGINS", "CHATX_CONFIG"], k
    )])
    error_message = "extra_environment keys must be CHATX_<FIELD> names not already set by the module (and not CHATX_CONFIG)."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the CloudWatch log groups, in days."
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs accepts."
  }
}

# ---------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------

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
    condition     = var.gateway_max_count >= var.gateway_min_count && var.gateway_max_count <= 1000
    error_message = "gateway_max_count must be between gateway_min_count and 1000."
  }
}

variable "gateway_cpu_target" {
  type        = number
  description = "Target average CPU utilisation (%) of the gateway service."
  default     = 60

  validation {
    condition     = var.gateway_cpu_target >= 10 && var.gateway_cpu_target <= 90
    error_message = "gateway_cpu_target must be between 10 and 90."
  }
}

variable "gateway_connections_per_task_target" {
  type        = number
  description = "Target of ALB active connections per running gateway task (ActiveConnectionCount / RunningTaskCount)."
  default     = 5000

  validation {
    condition     = var.gateway_connections_per_task_target >= 10
    error_message = "gateway_connections_per_task_target must be at least 10."
  }
}

variable "gateway_scale_in_cooldown" {
  type        = number
  description = "Seconds after a gateway scale-in before the next one. Keep it well above the drain (deregistration delay + drain_secs) so clients moved by one drain settle before the next."
  default     = 300

  validation {
    condition     = var.gateway_scale_in_cooldown >= 3 * (var.drain_secs + 5)
    error_message = "gateway_scale_in_cooldown must be at least three drain windows: 3 * (drain_secs + 5)."
  }
}

variable "gateway_scale_out_cooldown" {
  type        = number
  description = "Seconds after a gateway scale-out before the next one."
  default     = 60

  validation {
    condition     = var.gateway_scale_out_cooldown >= 0 && var.gateway_scale_out_cooldown <= 3600
    error_message = "gateway_scale_out_cooldown must be between 0 and 3600."
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
    condition     = var.worker_max_count >= var.worker_min_count && var.worker_max_count <= 100
    error_message = "worker_max_count must be between worker_min_count and 100."
  }
}

variable "worker_cpu_target" {
  type        = number
  description = "Target average CPU utilisation (%) of the worker service."
  default     = 60

  validation {
    condition     = var.worker_cpu_target >= 10 && var.worker_cpu_target <= 90
    error_message = "worker_cpu_target must be between 10 and 90."
  }
}

# ---------------------------------------------------------------------------------------
# Redis (ElastiCache)
# ---------------------------------------------------------------------------------------

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type."
  default     = "cache.t4g.small"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.redis_node_type))
    error_message = "redis_node_type must be an ElastiCache node type such as cache.t4g.small."
  }
}

variable "redis_engine_version" {
  type        = string
  description = "Redis engine version (7.x)."
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.redis_engine_version))
    error_message = "redis_engine_version must be 7.x (for example 7.1)."
  }
}

variable "redis_num_cache_clusters" {
  type        = number
  description = "Nodes of the Redis replication group (one primary, the rest replicas in other zones); at least 2 for automatic failover."
  default     = 2

  validation {
    condition     = var.redis_num_cache_clusters >= 2 && var.redis_num_cache_clusters <= 6
    error_message = "redis_num_cache_clusters must be between 2 and 6."
  }
}

variable "redis_snapshot_retention_days" {
  type        = number
  description = "Days of automatic Redis snapshots (sessions live in Redis)."
  default     = 7

  validation {
    condition     = var.redis_snapshot_retention_days >= 1 && var.redis_snapshot_retention_days <= 35
    error_message = "redis_snapshot_retention_days must be between 1 and 35."
  }
}

# ---------------------------------------------------------------------------------------
# PostgreSQL (RDS)
# ---------------------------------------------------------------------------------------

variable "db_instance_class" {
  type        = string
  description = "RDS instance class."
  default     = "db.t4g.medium"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "db_instance_class must be an RDS instance class such as db.t4g.medium."
  }
}

variable "db_engine_version" {
  type        = string
  description = "PostgreSQL major (or major.minor) version."
  default     = "16"

  validation {
    condition     = can(regex("^1[4-9](\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version must be PostgreSQL 14 or newer, for example 16 or 16.4."
  }
}

variable "db_allocated_storage" {
  type        = number
  description = "Initial storage of the database, in GiB."
  default     = 50

  validation {
    condition     = var.db_allocated_storage >= 20 && var.db_allocated_storage <= 65536
    error_message = "db_allocated_storage must be between 20 and 65536 GiB."
  }
}

variable "db_max_allocated_storage" {
  type        = number
  description = "Storage autoscaling limit of the database, in GiB (at least db_allocated_storage)."
  default     = 500

  validation {
    condition     = var.db_max_allocated_storage >= var.db_allocated_storage && var.db_max_allocated_storage <= 65536
    error_message = "db_max_allocated_storage must be between db_allocated_storage and 65536."
  }
}

variable "db_multi_az" {
  type        = bool
  description = "Run the database as a Multi-AZ instance (a standby in another zone)."
  default     = true

  validation {
    condition     = var.db_multi_az != null
    error_message = "db_multi_az must be true or false."
  }
}

variable "db_name" {
  type        = string
  description = "Name of the ChatX database."
  default     = "chatx"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must start with a letter and hold lower-case letters, digits and underscores."
  }
}

variable "db_username" {
  type        = string
  description = "Master user of the database (its password is generated and rotated by RDS in Secrets Manager)."
  default     = "chatx"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_username)) && !contains(["postgres", "rdsadmin", "admin"], var.db_username)
    error_message = "db_username must be a lower-case identifier other than postgres, rdsadmin or admin."
  }
}

variable "db_backup_retention_days" {
  type        = number
  description = "Days of automated database backups."
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "db_deletion_protection" {
  type        = bool
  description = "Protect the database against deletion (and take a final snapshot when it is deleted)."
  default     = true

  validation {
    condition     = var.db_deletion_protection != null
    error_message = "db_deletion_protection must be true or false."
  }
}

variable "db_password_rotation_days" {
  type        = number
  description = "Days between rotations of the RDS-managed master password. Tasks read the password at start: redeploy the services after each rotation (see README)."
  default     = 90

  validation {
    condition     = var.db_password_rotation_days >= 1 && var.db_password_rotation_days <= 365
    error_message = "db_password_rotation_days must be between 1 and 365."
  }
}

# ---------------------------------------------------------------------------------------
# NATS JetStream
# ---------------------------------------------------------------------------------------

variable "nats_url" {
  type        = string
  description = "Existing NATS (JetStream enabled) to use, as NATS_URL (for example nats://nats.internal:4222, several separated by commas). Empty: the module creates a 3-node JetStream cluster on EC2."
  default     = ""

  validation {
    condition     = var.nats_url == "" || alltrue([for u in split(",", var.nats_url) : can(regex("^(nats|tls)://[^\\s,]+$", trimspace(u)))])
    error_message = "nats_url must be empty or nats:// / tls:// URLs separated by commas."
  }
}

variable "nats_external_cidrs" {
  type        = list(string)
  description = "With an existing nats_url: IPv4 ranges the tasks may reach on port 4222."
  default     = []

  validation {
    condition     = alltrue([for c in var.nats_external_cidrs : can(cidrnetmask(c))]) && (var.nats_url == "" || length(var.nats_external_cidrs) > 0)
    error_message = "nats_external_cidrs must be IPv4 CIDR blocks, and non-empty when nats_url is set."
  }
}

variable "nats_version" {
  type        = string
  description = "nats-server release installed on the cluster nodes (2.10 or newer)."
  default     = "2.10.24"

  validation {
    condition     = can(regex("^2\\.(1[0-9])\\.[0-9]+$", var.nats_version))
    error_message = "nats_version must be 2.10.0 or newer, as x.y.z."
  }
}

variable "nats_instance_type" {
  type        = string
  description = "EC2 instance type of the NATS nodes; its architecture must match nats_ami_ssm_parameter."
  default     = "t4g.small"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.nats_instance_type))
    error_message = "nats_instance_type must be an EC2 instance type such as t4g.small."
  }
}

variable "nats_ami_ssm_parameter" {
  type        = string
  description = "Public SSM parameter naming the Amazon Linux 2023 AMI of the NATS nodes (arm64 for Graviton instance types)."
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"

  validation {
    condition     = can(regex("^/aws/service/ami-amazon-linux-latest/al2023-ami-", var.nats_ami_ssm_parameter))
    error_message = "nats_ami_ssm_parameter must be an Amazon Linux 2023 AMI parameter under /aws/service/ami-amazon-linux-latest/."
  }
}

variable "nats_volume_size_gb" {
  type        = number
  description = "Size of each NATS node's JetStream EBS volume, in GiB."
  default     = 50

  validation {
    condition     = var.nats_volume_size_gb >= 10 && var.nats_volume_size_gb <= 16384
    error_message = "nats_volume_size_gb must be between 10 and 16384."
  }
}
