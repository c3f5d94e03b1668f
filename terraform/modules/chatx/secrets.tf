# Secrets the tasks receive from Secrets Manager (never as plain environment values):
#   JWT_SECRET  <- aws_secretsmanager_secret.jwt
#   REDIS_URL   <- aws_secretsmanager_secret.redis, key "url" (holds the auth token);
#                  the token alone is under key "auth_token"
#   PGPASSWORD  <- the RDS-managed master user secret, key "password" (rds.tf)
#
# The generated values are also in the Terraform state: keep the state in an encrypted
# backend with restricted access.

resource "random_password" "jwt" {
  # JWT_SECRET must be at least 32 bytes; 64 characters from [A-Za-z0-9].
  length  = 64
  special = false
}

resource "random_password" "redis_auth" {
  # ElastiCache auth tokens: 16-128 printable characters. Alphanumeric only, so the token
  # can stand in REDIS_URL without percent-encoding.
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "jwt" {
  name_prefix             = "${var.name}-chatx-jwt-"
  description             = "ChatX JWT_SECRET (HS256) shared by every gateway and worker"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags

  #checkov:skip=CKV2_AWS_57:Rotating JWT_SECRET signs every client out (tokens in flight stop verifying); rotate it deliberately with a new secret version and a redeploy, not on a schedule.
}

resource "aws_secretsmanager_secret_version" "jwt" {
  secret_id     = aws_secretsmanager_secret.jwt.id
  secret_string = random_password.jwt.result
}

resource "aws_secretsmanager_secret" "redis" {
  name_prefix             = "${var.name}-chatx-redis-"
  description             = "ChatX ElastiCache auth token and the REDIS_URL that carries it"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags

  #checkov:skip=CKV2_AWS_57:The Redis auth token changes through the replication group (auth_token_update_strategy ROTATE) in a Terraform apply followed by a redeploy; there is no rotation Lambda for it.
}

resource "aws_secretsmanager_secret_version" "redis" {
  secret_id = aws_secretsmanager_secret.redis.id
  secret_string = jsonencode({
    auth_token = random_password.redis_auth.result
    # rediss:// = TLS in transit; the auth token is the password of the default user.
    url = "rediss://:${random_password.redis_auth.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:${aws_elasticache_replication_group.this.port}"
  })
}
