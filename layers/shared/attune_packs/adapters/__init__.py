"""AWS access. boto3 appears only in this package; services receive these adapters as arguments."""
