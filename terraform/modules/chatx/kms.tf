# One customer-managed key for the deployment's data at rest: CloudWatch log groups,
# Secrets Manager secrets, the RDS storage, Performance Insights and master secret, the
# ElastiCache replication group and the NATS EBS volumes.
resource "aws_kms_key" "this" {
  description             = "${var.name}: ChatX logs, secrets, database, cache and NATS volumes"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}-chatx"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:This is a KMS key policy: "*" as resource means this key only, and the account-root statement is the AWS default that delegates access to IAM.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: "*" as resource means this key only.
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: the account-root statement is the AWS default that delegates key administration to IAM policies.
  # The account administers the key through IAM policies (AWS default key policy).
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts this deployment's log groups with the key.
  statement {
    sid = "CloudWatchLogs"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/chatx/${var.name}/*",
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/rds/instance/${var.name}-chatx/*",
      ]
    }
  }
}
