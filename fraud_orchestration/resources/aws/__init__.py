"""AWS classes of the resources (``FRAUD_ENV=aws``): S3, Kinesis/Firehose, SageMaker.

Every client is built by :func:`fraud_orchestration.resources.aws.clients.aws_client` from a
region and an optional endpoint URL; credentials come from boto3's standard chain only.
"""
