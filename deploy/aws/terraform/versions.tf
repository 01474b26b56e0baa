terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.30, < 7.0"
    }
  }
}

# The bucket lives in var.region, which must not be var.home_region (where
# the SQL Server hosts run): keyescrow's preflight refuses a bucket in the
# hosts' own region.
provider "aws" {
  region = var.region
}
