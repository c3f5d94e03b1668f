# Security groups: each hop allows only what it needs.
#
#   clients --443/80--> alb --8080--> gateway --6379--> redis
#                                         \----5432--> postgres <--5432-- worker
#                                          \---4222--> nats (6222 between nodes) <--4222-- worker
#   gateway, worker, nats --443--> AWS APIs (ECR, Secrets Manager, CloudWatch, SSM) via NAT
#                                  or VPC endpoints.

resource "aws_security_group" "alb" {
  name        = "${var.name}-chatx-alb"
  description = "ChatX load balancer: HTTPS (and the HTTP redirect) from clients, to gateways"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-chatx-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "gateway" {
  name        = "${var.name}-chatx-gateway"
  description = "ChatX gateway tasks: from the load balancer, to Redis, PostgreSQL, NATS and AWS APIs"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-chatx-gateway" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "worker" {
  name        = "${var.name}-chatx-worker"
  description = "ChatX worker tasks (and migration): no ingress; to Redis, PostgreSQL, NATS and AWS APIs"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-chatx-worker" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-chatx-redis"
  description = "ChatX ElastiCache Redis: from gateways and workers only"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-chatx-redis" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "db" {
  name        = "${var.name}-chatx-db"
  description = "ChatX PostgreSQL: from gateways and workers only"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-chatx-db" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "nats" {
  count       = local.create_nats ? 1 : 0
  name        = "${var.name}-chatx-nats"
  description = "ChatX NATS cluster: clients from gateways and workers, routes between nodes"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-chatx-nats" })

  lifecycle {
    create_before_destroy = true
  }
}

# --- load balancer ------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS and WebSocket (wss) from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients, answered with a redirect to HTTPS only"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
  tags              = local.tags
  #checkov:skip=CKV_AWS_260:Port 80 only serves the listener's permanent redirect to HTTPS; no traffic is forwarded over HTTP.
}

resource "aws_vpc_security_group_egress_rule" "alb_to_gateway" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To gateway tasks (HTTP and WebSocket, health checks on /readyz)"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_port
  to_port                      = local.gateway_port
  referenced_security_group_id = aws_security_group.gateway.id
  tags                         = local.tags
}

# --- gateway and worker tasks ---------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "gateway_from_alb" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "From the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_port
  to_port                      = local.gateway_port
  referenced_security_group_id = aws_security_group.alb.id
  tags                         = local.tags
}

locals {
  task_security_groups = {
    gateway = aws_security_group.gateway.id
    worker  = aws_security_group.worker.id
  }

  # Egress of the tasks to the data stores, one rule per (task, store).
  task_to_store = merge(
    { for k, sg in local.task_security_groups : "${k}-redis" => { sg = sg, port = 6379, to = aws_security_group.redis.id, what = "Redis" } },
    { for k, sg in local.task_security_groups : "${k}-db" => { sg = sg, port = 5432, to = aws_security_group.db.id, what = "PostgreSQL" } },
    local.create_nats ? { for k, sg in local.task_security_groups : "${k}-nats" => { sg = sg, port = 4222, to = aws_security_group.nats[0].id, what = "NATS" } } : {},
  )

  # With an existing NATS: egress to its address ranges.
  task_to_external_nats = local.create_nats ? {} : merge([
    for k, sg in local.task_security_groups : { for c in var.nats_external_cidrs : "${k}-${c}" => { sg = sg, cidr = c } }
  ]...)
}

resource "aws_vpc_security_group_egress_rule" "task_to_store" {
  for_each                     = local.task_to_store
  security_group_id            = each.value.sg
  description                  = "To ${each.value.what}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = each.value.to
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "task_to_external_nats" {
  for_each          = local.task_to_external_nats
  security_group_id = each.value.sg
  description       = "To the existing NATS (nats_url)"
  ip_protocol       = "tcp"
  from_port         = 4222
  to_port           = 4222
  cidr_ipv4         = each.value.cidr
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "task_to_aws_apis" {
  for_each          = local.task_security_groups
  security_group_id = each.value
  description       = "HTTPS to AWS APIs: ECR image pulls, Secrets Manager, CloudWatch Logs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

# --- data stores ---------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "redis_from_tasks" {
  for_each                     = local.task_security_groups
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis (TLS) from ${each.key} tasks"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = each.value
  tags                         = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "db_from_tasks" {
  for_each                     = local.task_security_groups
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from ${each.key} tasks"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = each.value
  tags                         = local.tags
}

# --- NATS cluster --------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "nats_from_tasks" {
  for_each                     = local.create_nats ? local.task_security_groups : {}
  security_group_id            = aws_security_group.nats[0].id
  description                  = "NATS clients: ${each.key} tasks"
  ip_protocol                  = "tcp"
  from_port                    = 4222
  to_port                      = 4222
  referenced_security_group_id = each.value
  tags                         = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "nats_routes" {
  count                        = local.create_nats ? 1 : 0
  security_group_id            = aws_security_group.nats[0].id
  description                  = "NATS cluster routes between the nodes"
  ip_protocol                  = "tcp"
  from_port                    = 6222
  to_port                      = 6222
  referenced_security_group_id = aws_security_group.nats[0].id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "nats_routes" {
  count                        = local.create_nats ? 1 : 0
  security_group_id            = aws_security_group.nats[0].id
  description                  = "NATS cluster routes between the nodes"
  ip_protocol                  = "tcp"
  from_port                    = 6222
  to_port                      = 6222
  referenced_security_group_id = aws_security_group.nats[0].id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "nats_https" {
  count             = local.create_nats ? 1 : 0
  security_group_id = aws_security_group.nats[0].id
  description       = "HTTPS: SSM agent, package repositories and the nats-server release download at first boot"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}
