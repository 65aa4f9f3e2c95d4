"""The use case: a tenant's training jobs (cache -> upstream -> shape -> store), the query rules,
the upstream's states and their groups, the shaping of a page and the cover-link arithmetic."""
