DROP TABLE IF EXISTS comments;
DROP FUNCTION IF EXISTS comments_mark_edited();
