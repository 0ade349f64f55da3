# RDS PostgreSQL with IAM authentication, logical replication for Datastream, TLS forced, an
# RDS-managed master password, encrypted storage, backups, and alarms on slot lag and disk.

locals {
  family = "postgres${var.engine_version}"
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-"
  family      = local.family
  description = "hybridshop: logical replication, forced TLS, bounded slot WAL, query logging"

  # Static parameter: accepted only with pending-reboot (a new instance starts with it).
  parameter {
    name         = "rds.logical_replication"
    value        = "1"
    apply_method = "pending-reboot"
  }
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "max_slot_wal_keep_size"
    value = tostring(var.max_slot_wal_keep_size_mb)
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "hybridshop RDS: 5432 from the Lambdas and Datastream only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-db" }
}

resource "aws_vpc_security_group_ingress_rule" "from_clients" {
  count                        = length(var.client_security_group_ids)
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the Lambdas"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = var.client_security_group_ids[count.index]
}

# Datastream's ranges go into a managed prefix list behind ONE ingress rule: a dynamic block
# accepts a list that is unknown at plan (Datastream's static IPs are read at apply when the API
# is being enabled in the same run), where `count = length(list)` fails with "Invalid count
# argument" on a one-shot apply.
resource "aws_ec2_managed_prefix_list" "datastream" {
  name           = "${var.name}-datastream"
  address_family = "IPv4"
  max_entries    = var.allowed_cidrs_max

  dynamic "entry" {
    for_each = var.allowed_cidrs
    content {
      cidr        = entry.value
      description = "Datastream"
    }
  }

  tags = { Name = "${var.name}-datastream" }

  lifecycle {
    precondition {
      condition     = length(var.allowed_cidrs) <= var.allowed_cidrs_max
      error_message = "More Datastream ranges than allowed_cidrs_max: raise it (each entry counts as one security group rule)."
    }
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_cidrs" {
  security_group_id = aws_security_group.db.id
  description       = "PostgreSQL from Datastream"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  prefix_list_id    = aws_ec2_managed_prefix_list.datastream.id
}

# Enhanced monitoring: OS metrics (CPU steal, memory, disk queue) that CloudWatch lacks.
data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  count              = var.monitoring_interval_s > 0 ? 1 : 0
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  count      = var.monitoring_interval_s > 0 ? 1 : 0
  role       = aws_iam_role.monitoring[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# RDS creates these groups on first export with "never expire" if they do not exist: create them
# first, with a retention (the PostgreSQL log holds every DDL statement and connection).
resource "aws_cloudwatch_log_group" "exports" {
  for_each          = toset(var.cloudwatch_log_exports)
  name              = "/aws/rds/instance/${var.name}/${each.value}"
  retention_in_days = var.log_retention_days
}

resource "aws_db_instance" "this" {
  # checkov:skip=CKV_AWS_17:public only in ip_allowlist mode (Datastream's IP allowlist needs it): 5432 limited to Datastream's /32s by one prefix-list rule, TLS forced; private_vpn keeps it private (recommended for production)
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class
  db_name        = var.db_name

  username                            = var.master_username
  manage_master_user_password         = true
  iam_database_authentication_enabled = true

  allocated_storage     = var.allocated_storage_gb
  max_allocated_storage = var.max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = var.publicly_accessible
  parameter_group_name   = aws_db_parameter_group.this.name
  ca_cert_identifier     = var.ca_cert_identifier
  multi_az               = var.multi_az

  backup_retention_period = var.backup_retention_days
  copy_tags_to_snapshot   = true
  deletion_protection     = var.deletion_protection
  skip_final_snapshot     = var.skip_final_snapshot
  # Unique per instance: a second deploy with the same name (or a re-create) never collides
  # with an older final snapshot. Set at creation, then left alone.
  final_snapshot_identifier  = "${var.name}-final-${formatdate("YYYYMMDDhhmmss", timestamp())}"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  enabled_cloudwatch_logs_exports       = var.cloudwatch_log_exports
  monitoring_interval                   = var.monitoring_interval_s
  monitoring_role_arn                   = var.monitoring_interval_s > 0 ? aws_iam_role.monitoring[0].arn : null
  performance_insights_enabled          = true
  performance_insights_retention_period = 7

  lifecycle {
    ignore_changes = [final_snapshot_identifier]
  }

  depends_on = [aws_cloudwatch_log_group.exports]
}

# CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed alias/aws/sns key
# (its policy cannot be changed to let cloudwatch.amazonaws.com use it): a customer key whose
# policy allows CloudWatch, or the alarm that guards the disk never notifies anyone.
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "alarms_key" {
  # checkov:skip=CKV_AWS_111:a KMS key policy applies to its own key only; "*" there means this key, and write actions are limited to the account root and CloudWatch (source account condition)
  # checkov:skip=CKV_AWS_356:in a key policy the resource "*" is the key the policy is attached to
  # checkov:skip=CKV_AWS_109:the account root administers its own key (AWS's default key policy); no other principal gets management rights
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_kms_key" "alarms" {
  count                   = var.alarm_email == "" ? 0 : 1
  description             = "${var.name}: encrypts the alarm topic; CloudWatch alarms may use it"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.alarms_key.json
}

resource "aws_sns_topic" "alarms" {
  count             = var.alarm_email == "" ? 0 : 1
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms[0].arn
}

resource "aws_sns_topic_subscription" "alarms" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_actions = aws_sns_topic.alarms[*].arn
}

# A stopped or broken stream keeps its slot: WAL piles up. Alarm long before the disk fills.
resource "aws_cloudwatch_metric_alarm" "replication_slot_lag" {
  alarm_name          = "${var.name}-replication-slot-lag"
  alarm_description   = "The oldest replication slot retains too much WAL: is the Datastream stream running?"
  namespace           = "AWS/RDS"
  metric_name         = "OldestReplicationSlotLag"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.this.identifier }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.replication_lag_alarm_mb * 1024 * 1024
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "free_storage" {
  alarm_name          = "${var.name}-free-storage"
  alarm_description   = "Less than 2 GB of free storage left on the database."
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.this.identifier }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 2 * 1024 * 1024 * 1024
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}
