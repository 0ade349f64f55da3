output "address" {
  description = "DNS name of the instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.this.port
}

output "db_name" {
  description = "Name of the application database."
  value       = aws_db_instance.this.db_name
}

output "identifier" {
  description = "Instance identifier."
  value       = aws_db_instance.this.identifier
}

output "resource_id" {
  description = "DBI resource ID, the part of the rds-db:connect ARN that IAM auth checks."
  value       = aws_db_instance.this.resource_id
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed Secrets Manager secret with the master credentials."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.db.id
}

output "arn" {
  description = "ARN of the instance."
  value       = aws_db_instance.this.arn
}

output "client_ingress_rule_ids" {
  description = "Ingress rules that let the Lambdas reach 5432 (the bootstrap waits for them)."
  value       = aws_vpc_security_group_ingress_rule.from_clients[*].id
}

output "log_group_names" {
  description = "CloudWatch log groups of the exported RDS logs."
  value       = [for g in aws_cloudwatch_log_group.exports : g.name]
}
