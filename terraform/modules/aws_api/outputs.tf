output "api_endpoint" {
  description = "Base URL of the HTTP API."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "api_id" {
  description = "ID of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "function_names" {
  description = "Deployed function names by logical name."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "route_keys" {
  description = "Route keys served by the API."
  value       = sort(keys(local.routes))
}

output "db_user_arn" {
  description = "The rds-db:connect resource the functions may use."
  value       = local.db_user_arn
}
