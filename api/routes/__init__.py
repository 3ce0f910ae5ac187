"""One ``APIRouter`` per resource: jobs, estimates, and the system probes."""
