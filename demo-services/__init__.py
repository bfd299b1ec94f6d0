"""corrtrace.demo: a five-service mesh (ui, catalog, checkout, payment, shipping) plus aggregation, with
failures that roll back, an MDM consistency check, and the runner behind ``corrtrace demo``."""

from corrtrace.demo.faults import FaultPlan, plan_orders
from corrtrace.demo.settings import DemoSettings, Mesh

__all__ = ["DemoSettings", "FaultPlan", "Mesh", "plan_orders"]
