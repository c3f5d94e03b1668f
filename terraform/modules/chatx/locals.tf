data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  tags = merge({ Application = "chatx", Deployment = var.name }, var.tags)

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # The gateway listens on BIND_ADDR inside its task; the ALB targets this port.
  gateway_port = 8080

  # Drain on scale-in and deployments. ECS first deregisters the target (the ALB sends it
  # no new connections for `deregistration_delay` seconds), then sends SIGTERM, on which
  # the gateway spreads reconnect notices over CHATX_DRAIN_SECS and exits; `stop_timeout`
  # leaves the drain its window plus a margin before SIGKILL (Fargate allows 120 s).
  deregistration_delay = var.drain_secs + 5
  stop_timeout         = min(var.drain_secs + 10, 120)

  create_nats = var.nats_url == ""
  nats_nodes  = local.create_nats ? 3 : 0
  # NATS_URL: the given one, or every node of the module's cluster (comma-separated, the
  # NATS convention for a server list).
  nats_url = local.create_nats ? join(",", [for eni in aws_network_interface.nats : "nats://${eni.private_ip}:4222"]) : var.nats_url

  # DATABASE_URL without the password: the tasks get the RDS-managed master password as
  # PGPASSWORD (from Secrets Manager), which the PostgreSQL driver (sqlx) uses when the
  # URL has none. sslmode=require: encrypted (RDS enforces TLS through its parameter group).
  database_url = "postgres://${var.db_username}@${aws_db_instance.this.address}:${aws_db_instance.this.port}/${var.db_name}?sslmode=require"

  db_master_secret_arn = aws_db_instance.this.master_user_secret[0].secret_arn

  # Settings given as CHATX_<FIELD> = value by the caller, as ECS environment entries.
  extra_environment = [for k in sort(keys(var.extra_environment)) : { name = k, value = var.extra_environment[k] }]

  # Liveness probe of the gateway container: GET /healthz with bash's /dev/tcp (the image
  # has no HTTP client). Readiness (/readyz) is the ALB's health check.
  gateway_liveness_command = "exec 3<>/dev/tcp/127.0.0.1/${local.gateway_port} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && timeout 2 head -n 1 <&3 | grep -q ' 200 '"
}
