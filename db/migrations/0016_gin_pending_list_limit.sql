-- GIN's fast update keeps new entries in a pending list that every search over the index reads in
-- full until the list is merged into the tree. At PostgreSQL's default limit (4 MB, ~500 pages) a
-- rare-word search over a million messages cost ~3.4 ms of the backend instead of ~1.4 ms while
-- chats were streaming in (bench/README.md). 64 kB keeps the list to a few pages; sync ingest
-- measured the same with 4 MB, 256 kB and 64 kB. The schema declares the same storage parameter;
-- ALTER INDEX instead of drizzle-kit's drop and re-create, so applying this does not rebuild the
-- index (it takes effect for the entries inserted from now on).
ALTER INDEX "chat_messages_search_idx" SET (gin_pending_list_limit = 64);
