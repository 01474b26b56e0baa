variable "bucket" {
  description = "Name of the key-escrow bucket (globally unique)."
  type        = string
}

variable "region" {
  description = "Region of the bucket: a region other than home_region."
  type        = string
}

variable "home_region" {
  description = "Region the SQL Server hosts live in (keyescrow's home_region)."
  type        = string
}

variable "prefix" {
  description = "Key prefix the agent writes under (keyescrow's prefix), ending in /."
  type        = string
  default     = "sqlkeys/"
  validation {
    condition     = var.prefix == "" || endswith(var.prefix, "/")
    error_message = "prefix must be empty or end in /."
  }
}

variable "retention_days" {
  description = "COMPLIANCE default retention in days; keyescrow's retention.days must be at least this. Nobody, root included, can shorten it."
  type        = number
  default     = 3650
  validation {
    condition     = var.retention_days >= 1
    error_message = "retention_days must be at least 1."
  }
}

variable "agent_role_names" {
  description = "IAM roles (instance profiles, CI OIDC roles) the agent runs as; the policy is attached to each."
  type        = list(string)
  default     = []
}
