# Worker: persists messages from JetStream to PostgreSQL and sweeps presence. Its task
# starts with the one-shot `migration up` container; the worker container waits for it to
# exit with status 0 (dependsOn condition SUCCESS). The environment names below are exactly
# the settings the binaries read (README "Configuration"; infra/tests/deployment_settings.rs
# checks them). PGPASSWORD is read by the PostgreSQL driver when DATABASE_URL carries no
# password.

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name}-chatx-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.worker_task.arn
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name                   = "migration"
      image                  = var.image
      essential              = false
      command                = ["migration", "up"]
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      environment = [
        { name = "DATABASE_URL", value = local.database_url },
      ]
      secrets = [
        { name = "PGPASSWORD", valueFrom = "${local.db_master_secret_arn}:password::" },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.worker.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "migration"
        }
      }
    },
    {
      name                   = "worker"
      image                  = var.image
      essential              = true
      command                = ["worker"]
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      stopTimeout            = 30
      dependsOn = [
        { containerName = "migration", condition = "SUCCESS" }
      ]
      environment = concat([
        { name = "DATABASE_URL", value = local.database_url },
        { name = "NATS_URL", value = local.nats_url },
        { name = "CHATX_LOG_FORMAT", value = "json" },
      ], local.extra_environment)
      secrets = [
        { name = "JWT_SECRET", valueFrom = aws_secretsmanager_secret.jwt.arn },
        { name = "REDIS_URL", valueFrom = "${aws_secretsmanager_secret.redis.arn}:url::" },
        { name = "PGPASSWORD", valueFrom = "${local.db_master_secret_arn}:password::" },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.worker.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "worker"
        }
      }
    }
  ])

  depends_on = [aws_secretsmanager_secret_version.jwt, aws_secretsmanager_secret_version.redis]
}

resource "aws_ecs_service" "worker" {
  name                               = "${var.name}-chatx-worker"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.worker.arn
  desired_count                      = var.worker_min_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  # `terraform apply` waits until the worker (and so the migration) is up before it
  # creates the gateway service.
  wait_for_steady_state = true
  tags                  = local.tags

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [
    aws_iam_role_policy.execution_secrets,
    aws_vpc_security_group_egress_rule.task_to_store,
    aws_vpc_security_group_egress_rule.task_to_aws_apis,
    aws_instance.nats,
  ]
}
