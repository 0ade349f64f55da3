-- The catalog and the transactions (orders) the original project only claimed to store.
-- Every table has a primary key and REPLICA IDENTITY DEFAULT: Datastream's merge mode (and our
-- local replicator) treat the replica identity as the key.

CREATE TABLE products (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text          NOT NULL,
    description text          NOT NULL DEFAULT '',
    category    text          NOT NULL DEFAULT 'general',
    price       numeric(10,2) NOT NULL,
    currency    char(3)       NOT NULL DEFAULT 'EUR',
    image_url   text,
    available   boolean       NOT NULL DEFAULT true,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT products_name_trimmed CHECK (name = btrim(name)),
    CONSTRAINT products_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT products_description_length CHECK (char_length(description) <= 5000),
    CONSTRAINT products_category_format CHECK (category ~ '^[a-z0-9][a-z0-9-]{0,49}$'),
    CONSTRAINT products_price_positive CHECK (price > 0 AND price <> 'NaN'),  -- NaN > 0 is true in SQL
    CONSTRAINT products_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT products_image_url_format CHECK (image_url IS NULL OR image_url ~ '^https?://')
);

-- Listing: available products by category in id order (keyset pagination).
CREATE INDEX products_available_category_id ON products (category, id) WHERE available;
CREATE INDEX products_available_id ON products (id) WHERE available;

CREATE TABLE orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id      bigint        NOT NULL REFERENCES products (id),
    price           numeric(10,2) NOT NULL CHECK (price > 0 AND price <> 'NaN'),
    currency        char(3)       NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    purchased_at    timestamptz   NOT NULL DEFAULT now(),
    buyer_ref       text          CHECK (buyer_ref IS NULL OR char_length(buyer_ref) BETWEEN 1 AND 200),
    channel         text          NOT NULL DEFAULT 'api' CHECK (channel ~ '^[a-z][a-z0-9_-]{0,31}$'),
    idempotency_key text          CHECK (idempotency_key IS NULL OR char_length(idempotency_key) BETWEEN 1 AND 200),
    -- a product is sold at most once, enforced by the database and not only by the UPDATE guard
    CONSTRAINT orders_product_sold_once UNIQUE (product_id),
    CONSTRAINT orders_idempotency_key_unique UNIQUE (idempotency_key)
);

CREATE INDEX orders_purchased_at ON orders (purchased_at);

ALTER TABLE products REPLICA IDENTITY DEFAULT;
ALTER TABLE orders REPLICA IDENTITY DEFAULT;

-- updated_at follows every change, whoever makes it.
CREATE FUNCTION products_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER products_touch_updated_at
    BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_touch_updated_at();
