# PostgreSQL: users, rooms, messages, sessions' audit trail (DESIGN section 6). The master
# password is generated, stored and rotated by RDS in Secrets Manager
# (manage_master_user_password); the tasks receive it as PGPASSWORD.

resource "aws_db_subnet_group" "this" {
  name        = "${var.name}-chatx"
  description = "ChatX PostgreSQL subnets"
  subnet_ids  = var.private_subnet_ids
  tags        = local.tags
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-chatx-"
  description = "ChatX PostgreSQL: TLS required, slow statements and DDL logged"
  family      = "postgres${split(".", var.db_engine_version)[0]}"
  tags        = local.tags

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "this" {
  identifier     = "${var.name}-chatx"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name                       = var.db_name
  username                      = var.db_username
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.this.arn

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.this.arn

  multi_az               = var.db_multi_az
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.this.name

  iam_database_authentication_enabled = true
  backup_retention_period             = var.db_backup_retention_days
  backup_window                       = "02:00-03:00"
  maintenance_window                  = "sun:04:00-sun:05:00"
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.db_deletion_protection
  skip_final_snapshot                 = !var.db_deletion_protection
  final_snapshot_identifier           = "${var.name}-chatx-final"
  auto_minor_version_upgrade          = true
  apply_immediately                   = false

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this.arn
  performance_insights_retention_period = 7

  tags = local.tags

  depends_on = [aws_cloudwatch_log_group.postgres]
}

# RDS rotates the managed master password every 7 days unless told otherwise. Tasks read
# PGPASSWORD when they start, so each rotation must be followed by a redeploy of the
# services (README: "Password rotation"); a longer period makes that rarer.
resource "aws_secretsmanager_secret_rotation" "db_master" {
  secret_id = local.db_master_secret_arn

  rotation_rules {
    automatically_after_days = var.db_password_rotation_days
  }
}
