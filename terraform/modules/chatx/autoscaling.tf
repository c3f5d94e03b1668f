# Gateways scale on CPU and on WebSocket connections per task; workers on CPU.
# Target tracking scales out fast and in slowly: each scale-in drains a gateway, and the
# cooldown lets its clients settle on the others before the next one goes.

resource "aws_appautoscaling_target" "gateway" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.gateway.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.gateway_min_count
  max_capacity       = var.gateway_max_count
  tags               = local.tags
}

resource "aws_appautoscaling_policy" "gateway_cpu" {
  name               = "${var.name}-chatx-gateway-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  resource_id        = aws_appautoscaling_target.gateway.resource_id
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.gateway_cpu_target
    scale_in_cooldown  = var.gateway_scale_in_cooldown
    scale_out_cooldown = var.gateway_scale_out_cooldown

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Connections per task = ALB ActiveConnectionCount / running gateway tasks (metric math).
# WebSockets are long-lived and cheap on CPU, so connection count is what fills a gateway.
resource "aws_appautoscaling_policy" "gateway_connections" {
  name               = "${var.name}-chatx-gateway-connections"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  resource_id        = aws_appautoscaling_target.gateway.resource_id
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.gateway_connections_per_task_target
    scale_in_cooldown  = var.gateway_scale_in_cooldown
    scale_out_cooldown = var.gateway_scale_out_cooldown

    customized_metric_specification {
      metrics {
        id          = "connections"
        label       = "ALB active connections"
        return_data = false

        metric_stat {
          stat = "Sum"

          metric {
            namespace   = "AWS/ApplicationELB"
            metric_name = "ActiveConnectionCount"

            dimensions {
              name  = "LoadBalancer"
              value = aws_lb.this.arn_suffix
            }
          }
        }
      }

      metrics {
        id          = "tasks"
        label       = "Running gateway tasks"
        return_data = false

        metric_stat {
          stat = "Average"

          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"

            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }

            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.gateway.name
            }
          }
        }
      }

      metrics {
        id          = "connections_per_task"
        label       = "Active connections per gateway task"
        expression  = "connections / tasks"
        return_data = true
      }
    }
  }
}

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.worker.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.worker_min_count
  max_capacity       = var.worker_max_count
  tags               = local.tags
}

resource "aws_appautoscaling_policy" "worker_cpu" {
  name               = "${var.name}-chatx-worker-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.worker_cpu_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
