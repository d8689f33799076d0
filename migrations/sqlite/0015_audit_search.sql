-- The PostgreSQL edition adds trigram indexes for the audit page's substring
-- searches; SQLite answers them from the covering index of 0003 and needs
-- nothing here.
SELECT 1;
