variable "project_id" {
  description = "GCP project."
  type        = string
}

variable "region" {
  description = "Region of the VPN gateway and router (same as Datastream)."
  type        = string
}

variable "name" {
  description = "Prefix of the network and VPN resources."
  type        = string
  default     = "hybridshop"
}

variable "subnet_cidr" {
  description = "Range of the GCP subnet (must not overlap the AWS VPC)."
  type        = string
  default     = "10.60.0.0/24"
}

variable "datastream_cidr" {
  description = "The /29 reserved for Datastream's peering; advertised to AWS over BGP."
  type        = string
  default     = "10.60.255.0/29"
}

variable "bgp_asn" {
  description = "Private ASN of the Cloud Router."
  type        = number
  default     = 65010
}

variable "aws_asn" {
  description = "ASN of the AWS virtual private gateway."
  type        = number
}

variable "aws_tunnels" {
  description = "The four AWS tunnels (from the aws_vpn module), in order."
  type = list(object({
    gcp_interface    = number
    outside_address  = string
    preshared_key    = string
    aws_inside_ip    = string
    gcp_inside_ip    = string
    inside_cidr_bits = number
  }))
  sensitive = true
}
