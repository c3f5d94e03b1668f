output "url" {
  description = "HTTPS address of the load balancer (point your DNS name at alb_dns_name)."
  value       = "https://${module.chatx.alb_dns_name}/"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = module.chatx.alb_dns_name
}

output "alb_zone_id" {
  description = "Route 53 zone id of the load balancer."
  value       = module.chatx.alb_zone_id
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.chatx.cluster_name
}

output "gateway_service_name" {
  description = "Gateway ECS service."
  value       = module.chatx.gateway_service_name
}

output "worker_service_name" {
  description = "Worker ECS service."
  value       = module.chatx.worker_service_name
}

output "log_group_names" {
  description = "CloudWatch log groups."
  value       = module.chatx.log_group_names
}

output "db_master_user_secret_arn" {
  description = "RDS-managed master user secret (rotates; redeploy the services afterwards)."
  value       = module.chatx.db_master_user_secret_arn
}
