# Gateway: HTTP + WebSocket on BIND_ADDR behind the ALB, distributed mode.
# The environment names below are exactly the settings the binary reads (README
# "Configuration"; infra/tests/deployment_settings.rs checks them). PGPASSWORD is read by
# the PostgreSQL driver when DATABASE_URL carries no password.

resource "aws_ecs_task_definition" "gateway" {
  family                   = "${var.name}-chatx-gateway"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.gateway_cpu
  memory                   = var.gateway_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.gateway_task.arn
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name                   = "gateway"
      image                  = var.image
      essential              = true
      command                = ["gateway"]
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      stopTimeout            = local.stop_timeout
      portMappings = [
        { name = "http", containerPort = local.gateway_port, protocol = "tcp" }
      ]
      # One socket per client: allow many open files.
      ulimits = [
        { name = "nofile", softLimit = 1048576, hardLimit = 1048576 }
      ]
      environment = concat([
        { name = "BIND_ADDR", value = "0.0.0.0:${local.gateway_port}" },
        { name = "DATABASE_URL", value = local.database_url },
        { name = "NATS_URL", value = local.nats_url },
        { name = "CHATX_TRUST_FORWARDED_FOR", value = "true" },
        { name = "CHATX_LOG_FORMAT", value = "json" },
        { name = "CHATX_DRAIN_SECS", value = tostring(var.drain_secs) },
        { name = "CHATX_PING_INTERVAL_SECS", value = tostring(var.ping_interval_secs) },
        { name = "CHATX_ALLOWED_ORIGINS", value = join(",", var.allowed_origins) },
      ], local.extra_environment)
      secrets = [
        { name = "JWT_SECRET", valueFrom = aws_secretsmanager_secret.jwt.arn },
        { name = "REDIS_URL", valueFrom = "${aws_secretsmanager_secret.redis.arn}:url::" },
        { name = "PGPASSWORD", valueFrom = "${local.db_master_secret_arn}:password::" },
      ]
      healthCheck = {
        command     = ["CMD", "bash", "-c", local.gateway_liveness_command]
        interval    = 10
        timeout     = 3
        retries     = 3
        startPeriod = 20
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.gateway.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "gateway"
        }
      }
    }
  ])

  depends_on = [aws_secretsmanager_secret_version.jwt, aws_secretsmanager_secret_version.redis]
}

resource "aws_ecs_service" "gateway" {
  name                              = "${var.name}-chatx-gateway"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.gateway.arn
  desired_count                     = var.gateway_min_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  propagate_tags                    = "SERVICE"
  enable_ecs_managed_tags           = true
  health_check_grace_period_seconds = 30
  # Rolling deployments replace gateways a few at a time: each one drains
  # (deregistration delay, then SIGTERM and CHATX_DRAIN_SECS) while the others take
  # over its clients.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 150
  tags                               = local.tags

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway.arn
    container_name   = "gateway"
    container_port   = local.gateway_port
  }

  lifecycle {
    # The autoscaler owns the task count.
    ignore_changes = [desired_count]
  }

  # Gateways start once the listener exists and the worker (which runs `migration up`
  # first) is steady.
  depends_on = [aws_lb_listener.https, aws_ecs_service.worker, aws_iam_role_policy.execution_secrets]
}
