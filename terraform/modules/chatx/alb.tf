# Application Load Balancer in front of the gateways: HTTPS (and wss) on 443, HTTP only
# redirects. WebSockets need no stickiness: every gateway serves every client, and a
# client that reconnects resumes with `join` + `since` wherever it lands.

resource "aws_lb" "this" {
  name                       = "${var.name}-chatx"
  load_balancer_type         = "application"
  internal                   = var.alb_internal
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.alb_idle_timeout
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  # The ALB appends the client address to X-Forwarded-For; the gateways read it with
  # CHATX_TRUST_FORWARDED_FOR=true.
  xff_header_processing_mode = "append"
  tags                       = local.tags

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket == "" ? [] : [var.alb_access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = "${var.name}-chatx"
      enabled = true
    }
  }

  #checkov:skip=CKV_AWS_91:Access logs are optional (alb_access_logs_bucket): they need a bucket whose policy lets the regional ELB account write, which is account-wide infrastructure.
  #checkov:skip=CKV2_AWS_76:No WAF web ACL is created here (web_acl_arn is optional); its rule set, including the Log4j managed rules, is the operator's.
  #checkov:skip=CKV2_AWS_28:A WAF web ACL is optional (web_acl_arn): rules are the operator's choice; the gateways rate-limit per IP themselves.
}

resource "aws_wafv2_web_acl_association" "this" {
  count        = var.web_acl_arn == "" ? 0 : 1
  resource_arn = aws_lb.this.arn
  web_acl_arn  = var.web_acl_arn
}

resource "aws_lb_target_group" "gateway" {
  name                 = "${var.name}-chatx-gw"
  port                 = local.gateway_port
  protocol             = "HTTP"
  protocol_version     = "HTTP1"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = local.deregistration_delay

  load_balancing_algorithm_type = "round_robin"

  # Readiness: /readyz is 503 while the gateway drains or cannot reach its backends.
  health_check {
    enabled             = true
    path                = "/readyz"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  stickiness {
    enabled = false
    type    = "lb_cookie"
  }

  tags = local.tags

  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; the gateways listen on plain HTTP in private subnets and only the ALB's security group reaches them.
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.alb_ssl_policy
  certificate_arn   = var.certificate_arn
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = local.tags

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}
