# A versioned S3 bucket with Object Lock (COMPLIANCE default retention) in a
# second region, and the agent's least-privilege policy (no Delete*), the
# same document as ../keyescrow-agent-policy.json.

resource "aws_s3_bucket" "keys" {
  bucket              = var.bucket
  object_lock_enabled = true # only at creation; implies versioning

  lifecycle {
    prevent_destroy = true
    precondition {
      condition     = lower(var.region) != lower(var.home_region)
      error_message = "region must differ from home_region: keyescrow refuses a destination in the hosts' own region."
    }
  }
}

resource "aws_s3_bucket_versioning" "keys" {
  bucket = aws_s3_bucket.keys.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "keys" {
  bucket = aws_s3_bucket.keys.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.retention_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.keys]
}

resource "aws_s3_bucket_public_access_block" "keys" {
  bucket                  = aws_s3_bucket.keys.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "keys" {
  bucket = aws_s3_bucket.keys.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "keys" {
  bucket = aws_s3_bucket.keys.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# TLS only.
resource "aws_s3_bucket_policy" "keys" {
  bucket = aws_s3_bucket.keys.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.keys.arn, "${aws_s3_bucket.keys.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.keys]
}

# The agent's policy: ../keyescrow-agent-policy.json with the bucket and
# prefix filled in (one document; cmd/keyescrow's policy test checks it
# against every S3 action the agent calls).
resource "aws_iam_policy" "agent" {
  name        = "keyescrow-agent-${var.bucket}"
  description = "keyescrow: write and prove locked key copies in ${var.bucket}/${var.prefix}; no delete"
  policy = replace(replace(file("${path.module}/../keyescrow-agent-policy.json"),
  "BUCKET_NAME", aws_s3_bucket.keys.id), "PREFIX", var.prefix)
}

resource "aws_iam_role_policy_attachment" "agent" {
  for_each   = toset(var.agent_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.agent.arn
}
