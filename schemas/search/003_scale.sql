-- search 003: settings for 1,000,000 posts and 100,000 users
-- (docs/benchmarks.md, "Search at scale").
--
-- No parallel plans on the tables the endpoints read. A search answers in
-- milliseconds from a few thousand rows at most; a parallel plan adds the
-- start of worker processes to every such query (tens of milliseconds on a
-- busy 2-core machine, seen as the slowest 1% of post searches), and the
-- service's own worker threads already keep the cores busy. The planner
-- chose one as soon as the GIN index was estimated to return thousands of
-- rows. The trends aggregate (tag_counts_*) keeps its parallel plans: it is
-- computed once per window every SEARCH_TRENDS_TTL_MS, off the hot path.
ALTER TABLE posts SET (parallel_workers = 0);
ALTER TABLE users SET (parallel_workers = 0);
ALTER TABLE follows SET (parallel_workers = 0);
ALTER TABLE post_tags SET (parallel_workers = 0);
ALTER TABLE hashtags SET (parallel_workers = 0);
