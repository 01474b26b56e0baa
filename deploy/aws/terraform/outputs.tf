output "bucket" {
  value = aws_s3_bucket.keys.id
}

output "region" {
  value = var.region
}

output "agent_policy_arn" {
  value = aws_iam_policy.agent.arn
}

# Paste into keyescrow.yaml.
output "keyescrow_destination" {
  value = <<-YAML
    home_region: ${var.home_region}
    destinations:
      - name: offsite-s3
        type: s3
        bucket: ${aws_s3_bucket.keys.id}
        region: ${var.region}
        prefix: ${var.prefix}
        retention: {mode: COMPLIANCE, days: ${var.retention_days}}
  YAML
}
