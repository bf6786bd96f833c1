-- ListIssuances pages through one caller's issuances oldest first (reconciliation in ra).
CREATE INDEX issuances_by_caller_time ON issuances (caller, created_at, serial_hex);
