"""cmdb-sync: the system of record for Alibaba Cloud Yunxiao AppStack webhooks."""

__version__ = "0.1.0"
