output "function_name" {
  description = "Name of the bootstrap function."
  value       = aws_lambda_function.bootstrap.function_name
}

output "result" {
  description = "JSON report of the last bootstrap run."
  value       = aws_lambda_invocation.bootstrap.result
}

output "app_db_user" {
  description = "Application user created by the bootstrap (after it ran)."
  value       = jsondecode(aws_lambda_invocation.bootstrap.result)["app_user"]
}

output "datastream_db_user" {
  description = "Replication user created by the bootstrap (after it ran)."
  value       = jsondecode(aws_lambda_invocation.bootstrap.result)["datastream_user"]
}

output "datastream_secret_arn" {
  description = "ARN of the secret holding the Datastream user's password."
  value       = aws_secretsmanager_secret.datastream.arn
}

output "datastream_password" {
  description = "Password of the Datastream user (for the Datastream connection profile)."
  value       = local.password_version.secret_string
  sensitive   = true
}

output "publication" {
  description = "Publication created by the bootstrap (after it ran)."
  value       = jsondecode(aws_lambda_invocation.bootstrap.result)["publication"]
}

output "replication_slot" {
  description = "Replication slot created by the bootstrap (after it ran)."
  value       = jsondecode(aws_lambda_invocation.bootstrap.result)["replication_slot"]
}

output "replication_slot_status" {
  description = "wal_status of the replication slot after the last bootstrap (\"lost\" needs repair_lost_slot)."
  value       = try(jsondecode(aws_lambda_invocation.bootstrap.result)["replication_slot_status"], null)
}

output "server_address" {
  description = "Private IP the instance serves from, read on every plan (null unless report_server_address)."
  value       = var.report_server_address ? jsondecode(data.aws_lambda_invocation.check[0].result)["server_address"] : null
}
