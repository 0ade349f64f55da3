output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 range of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets (RDS in private mode, every Lambda)."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnets (empty unless public_subnets_enabled)."
  value       = aws_subnet.public[*].id
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets (VPN route propagation)."
  value       = [aws_route_table.private.id]
}

output "lambda_security_group_id" {
  description = "Security group every Lambda runs in."
  value       = aws_security_group.lambda.id
}

output "interface_endpoint_ids" {
  description = "Interface VPC endpoint IDs by service; the bootstrap Lambda depends on them."
  value       = { for k, v in aws_vpc_endpoint.interface : k => v.id }
}
