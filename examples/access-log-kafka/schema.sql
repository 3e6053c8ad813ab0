-- The table the access-log-kafka job upserts its per-minute counts into.
CREATE TABLE IF NOT EXISTS url_counts (
    key          text   NOT NULL,   -- the URL
    window_start bigint NOT NULL,   -- epoch ms
    window_end   bigint NOT NULL,
    count        bigint NOT NULL,
    PRIMARY KEY (key, window_start)
);
