output "alb_dns_name" {
  description = "DNS name of the load balancer; point the service's DNS record (CNAME or alias) at it."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Route 53 zone id of the load balancer, for an alias record."
  value       = aws_lb.this.zone_id
}

output "alb_arn" {
  description = "ARN of the load balancer."
  value       = aws_lb.this.arn
}

output "target_group_arn" {
  description = "ARN of the gateways' target group."
  value       = aws_lb_target_group.gateway.arn
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "gateway_service_name" {
  description = "Name of the gateway ECS service."
  value       = aws_ecs_service.gateway.name
}

output "worker_service_name" {
  description = "Name of the worker ECS service (its tasks run `migration up` first)."
  value       = aws_ecs_service.worker.name
}

output "redis_primary_endpoint" {
  description = "Primary endpoint of the Redis replication group (TLS, auth token in Secrets Manager)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "db_address" {
  description = "Address of the PostgreSQL instance."
  value       = aws_db_instance.this.address
}

output "database_url" {
  description = "DATABASE_URL given to the tasks (without the password, which they get as PGPASSWORD)."
  value       = local.database_url
}

output "nats_url" {
  description = "NATS_URL given to the tasks."
  value       = local.nats_url
}

output "jwt_secret_arn" {
  description = "Secrets Manager secret holding JWT_SECRET."
  value       = aws_secretsmanager_secret.jwt.arn
}

output "redis_secret_arn" {
  description = "Secrets Manager secret holding the Redis auth token (key auth_token) and REDIS_URL (key url)."
  value       = aws_secretsmanager_secret.redis.arn
}

output "db_master_user_secret_arn" {
  description = "Secrets Manager secret of the RDS-managed master user (keys username, password)."
  value       = local.db_master_secret_arn
}

output "kms_key_arn" {
  description = "KMS key encrypting the logs, secrets, database, cache and NATS volumes."
  value       = aws_kms_key.this.arn
}

output "log_group_names" {
  description = "CloudWatch log groups of the gateway and of the worker (and migration) containers."
  value = {
    gateway = aws_cloudwatch_log_group.gateway.name
    worker  = aws_cloudwatch_log_group.worker.name
  }
}

output "security_group_ids" {
  description = "Security groups of each hop."
  value = {
    alb     = aws_security_group.alb.id
    gateway = aws_security_group.gateway.id
    worker  = aws_security_group.worker.id
    redis   = aws_security_group.redis.id
    db      = aws_security_group.db.id
    nats    = one(aws_security_group.nats[*].id)
  }
}

output "nats_instance_ids" {
  description = "EC2 instances of the module's NATS cluster (empty with an existing nats_url)."
  value       = aws_instance.nats[*].id
}
