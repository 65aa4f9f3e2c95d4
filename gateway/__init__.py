"""metastudio-gateway: a signing, caching gateway in front of Huawei Cloud MetaStudio."""

__version__ = "0.1.0"
