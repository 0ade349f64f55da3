output "tunnels" {
  description = "The four tunnels: AWS outside address, pre-shared key, BGP inside addresses, GCP interface."
  value       = local.tunnels
  sensitive   = true
}

output "amazon_side_asn" {
  description = "ASN of the AWS side (the GCP router peers with it)."
  value       = aws_vpn_gateway.this.amazon_side_asn
}
