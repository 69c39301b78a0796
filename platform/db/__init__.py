from backoffice.platform.db.base import Base, PlatformOwned, TenantOwned, utcnow
from backoffice.platform.db.session import Database, NotFound, TenantMismatch, get_owned

__all__ = ["Base", "Database", "NotFound", "PlatformOwned", "TenantMismatch", "TenantOwned", "get_owned", "utcnow"]
