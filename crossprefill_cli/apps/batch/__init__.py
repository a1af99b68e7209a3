"""Many records with one model load: records in, records out (`records`), here or on
Ray Data actors (`ray_engine`)."""
