resource "aws_cloudwatch_log_group" "gateway" {
  name              = "/chatx/${var.name}/gateway"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

# The worker task's two containers: `worker` and the one-shot `migration`.
resource "aws_cloudwatch_log_group" "worker" {
  name              = "/chatx/${var.name}/worker"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

# ECS Exec sessions (the cluster's execute-command logging).
resource "aws_cloudwatch_log_group" "ecs_exec" {
  name              = "/chatx/${var.name}/ecs-exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

# PostgreSQL logs exported by RDS (the name is fixed by RDS); created here so they get a
# retention and the key.
resource "aws_cloudwatch_log_group" "postgres" {
  for_each          = toset(["postgresql", "upgrade"])
  name              = "/aws/rds/instance/${var.name}-chatx/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}
