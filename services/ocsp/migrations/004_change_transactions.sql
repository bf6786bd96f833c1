-- Which transaction last changed each row, for the change followers of the other pods.
--
-- Following the store by change_id alone misses changes: a change number is taken when a statement
-- runs, not when its transaction commits, so a transaction that took 10 can commit after one that
-- took 11, and a follower that had already read 11 never reads 10 (a status change or new
-- responses other pods would never learn of, until the row changed again). Followers now read, at
-- each pass, the rows of the transactions that completed since their previous pass, by the
-- writer's transaction id and the snapshots PostgreSQL gives (pg_current_snapshot): every
-- committed change is read exactly in the pass after its commit, whatever order numbers were taken in.
ALTER TABLE certificates ADD COLUMN change_xid xid8 DEFAULT pg_current_xact_id();
-- By transaction, then serial: a pass reads a transaction's rows, or a range of transactions, in
-- index order a page at a time, however many rows one transaction changed.
CREATE INDEX certificates_by_change_xid ON certificates (change_xid, serial_hex);
