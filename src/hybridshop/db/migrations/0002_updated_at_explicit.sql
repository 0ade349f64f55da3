-- updated_at follows every change unless the writer sets it: history written with explicit
-- past times (`hybridshop simulate --backfill-days`, core functions with `at=`) keeps the time
-- of the simulated sale instead of the time the backfill ran. Any UPDATE that leaves
-- updated_at alone still gets now(), as before.
CREATE OR REPLACE FUNCTION products_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
