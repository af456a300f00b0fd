-- The transaction features: one row per transaction of the view `transactions`
-- (transaction_id, tx_datetime, tx_time_seconds, customer_id, terminal_id, tx_amount, tx_fraud).
--
-- Written in the dialect DuckDB and Spark SQL share; both engines run this exact text.
-- Windows are RANGE frames on whole epoch seconds, so "w days" is the half-open interval
-- (t - w days, t]:  RANGE BETWEEN w*86400-1 PRECEDING AND CURRENT ROW. Transactions of the
-- same card in the same second are peers and see each other. A frame ending at
-- "1 PRECEDING" holds only strictly earlier seconds: (t - w days, t).
-- Terminal windows sit behind the 7-day label delay, (t - 7 - w days, t - 7 days]: a label is
-- only known a week after the transaction, so a feature at time t may use labels up to t - 7d.
-- Every frame reaches back at most 37 days (30-day windows behind the 7-day delay), the
-- look-back the daily build reads, so a day built alone equals the same day built in a long run.
-- Card frames reach back at most 30 days and read no label, terminal frames at most 37 days
-- and labels only behind the delay: what the online store keeps for serving (each card's
-- transactions of the last 30 days without labels, each terminal's of the last 37 with them).
-- Means of amounts average whole cents, AVG(ROUND(tx_amount * 100)) / 100: float64 adds whole
-- numbers (below 2^53) exactly in any order, so a mean does not depend on the order rows reach
-- the engine. A sum of the amounts themselves did: a parallel sort puts a card's same-second
-- peers either way round, and re-running one day changed a few means in their last bit.
-- Weekday arithmetic on epoch days (1970-01-01 was a Thursday, weekday 3 with Monday = 0)
-- keeps the text portable: the engines number weekdays differently.
--
-- Sentinels (the feature suite allows no nulls), documented in features/__init__.py:
--   amount ratios to an empty or all-zero history: -1.0 (ratios to a window holding the
--   current transaction: 1.0 when its mean is 0, i.e. the amount is 0 too);
--   seconds since an event not in the window: the window's length (30 or 37 days).
SELECT
  transaction_id,
  tx_datetime,
  tx_time_seconds,
  customer_id,
  terminal_id,
  tx_amount,
  CAST((FLOOR(tx_time_seconds / 86400) + 3) % 7 >= 5 AS INT) AS tx_during_weekend,
  CAST(tx_time_seconds % 86400 < 25200 AS INT) AS tx_during_night,
  COUNT(*) OVER customer_1d AS customer_id_nb_tx_1day_window,
  AVG(ROUND(tx_amount * 100)) OVER customer_1d / 100 AS customer_id_avg_amount_1day_window,
  COUNT(*) OVER customer_7d AS customer_id_nb_tx_7day_window,
  AVG(ROUND(tx_amount * 100)) OVER customer_7d / 100 AS customer_id_avg_amount_7day_window,
  COUNT(*) OVER customer_30d AS customer_id_nb_tx_30day_window,
  AVG(ROUND(tx_amount * 100)) OVER customer_30d / 100 AS customer_id_avg_amount_30day_window,
  COUNT(*) OVER terminal_1d AS terminal_id_nb_tx_1day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER terminal_1d AS DOUBLE)
           / NULLIF(COUNT(*) OVER terminal_1d, 0), 0.0) AS terminal_id_risk_1day_window,
  COUNT(*) OVER terminal_7d AS terminal_id_nb_tx_7day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER terminal_7d AS DOUBLE)
           / NULLIF(COUNT(*) OVER terminal_7d, 0), 0.0) AS terminal_id_risk_7day_window,
  COUNT(*) OVER terminal_30d AS terminal_id_nb_tx_30day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER terminal_30d AS DOUBLE)
           / NULLIF(COUNT(*) OVER terminal_30d, 0), 0.0) AS terminal_id_risk_30day_window,
  -- The card's amount against its own habits (no labels; card history of 30 days at most,
  -- what the online store keeps).
  COALESCE(tx_amount / NULLIF(AVG(ROUND(tx_amount * 100)) OVER customer_1d / 100, 0), 1.0)
    AS customer_id_amount_ratio_1day_window,
  COALESCE(tx_amount / NULLIF(AVG(ROUND(tx_amount * 100)) OVER customer_7d / 100, 0), 1.0)
    AS customer_id_amount_ratio_7day_window,
  COALESCE(tx_amount / NULLIF(AVG(ROUND(tx_amount * 100)) OVER customer_30d / 100, 0), 1.0)
    AS customer_id_amount_ratio_30day_window,
  COALESCE(tx_amount / NULLIF(AVG(ROUND(tx_amount * 100)) OVER customer_30d_before / 100, 0), -1.0)
    AS customer_id_amount_ratio_previous_30day_window,
  COALESCE(tx_amount / NULLIF(AVG(ROUND(tx_amount * 100)) OVER customer_7_30d / 100, 0), -1.0)
    AS customer_id_amount_ratio_7to30day_window,
  COALESCE(tx_amount / NULLIF(AVG(ROUND(tx_amount * 100)) OVER customer_14_30d / 100, 0), -1.0)
    AS customer_id_amount_ratio_14to30day_window,
  COALESCE(tx_amount / NULLIF(MAX(tx_amount) OVER customer_30d_before, 0), -1.0)
    AS customer_id_amount_to_max_30day_window,
  COALESCE(tx_time_seconds - MAX(tx_time_seconds) OVER customer_30d_before, 2592000)
    AS customer_id_seconds_since_previous_tx,
  -- The card at this terminal (no labels).
  COUNT(*) OVER customer_terminal_30d AS customer_terminal_nb_tx_30day_window,
  CAST(COUNT(*) OVER customer_terminal_30d_before > 0 AS INT)
    AS customer_terminal_seen_30day_window,
  -- The terminal's labelled history, behind the label delay.
  COUNT(CASE WHEN tx_fraud = 1 THEN 1 END) OVER terminal_7d
    AS terminal_id_nb_fraud_7day_window,
  COUNT(CASE WHEN tx_fraud = 1 THEN 1 END) OVER terminal_30d
    AS terminal_id_nb_fraud_30day_window,
  COALESCE(tx_time_seconds - MAX(CASE WHEN tx_fraud = 1 THEN tx_time_seconds END)
                             OVER terminal_30d, 3196800)
    AS terminal_id_seconds_since_last_fraud,
  COALESCE(tx_time_seconds - MIN(CASE WHEN tx_fraud = 1 THEN tx_time_seconds END)
                             OVER terminal_30d, 3196800)
    AS terminal_id_seconds_since_first_fraud,
  COALESCE(tx_time_seconds - MAX(CASE WHEN tx_fraud = 0 THEN tx_time_seconds END)
                             OVER terminal_30d, 3196800)
    AS terminal_id_seconds_since_last_genuine,
  CAST(COALESCE(MAX(CASE WHEN tx_fraud = 1 THEN tx_time_seconds END) OVER terminal_30d, -1)
       > COALESCE(MAX(CASE WHEN tx_fraud = 0 THEN tx_time_seconds END) OVER terminal_30d, -1)
       AS INT) AS terminal_id_last_label_fraud,
  -- The terminal's activity up to now (no labels, so no delay).
  COUNT(*) OVER terminal_now_1d AS terminal_id_nb_tx_undelayed_1day_window,
  COUNT(*) OVER terminal_now_7d AS terminal_id_nb_tx_undelayed_7day_window,
  tx_fraud
FROM transactions
WINDOW
  customer_1d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 86399 PRECEDING AND CURRENT ROW),
  customer_7d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 604799 PRECEDING AND CURRENT ROW),
  customer_30d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 2591999 PRECEDING AND CURRENT ROW),
  customer_30d_before AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 2591999 PRECEDING AND 1 PRECEDING),
  customer_7_30d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 2591999 PRECEDING AND 604800 PRECEDING),
  customer_14_30d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 2591999 PRECEDING AND 1209600 PRECEDING),
  customer_terminal_30d AS (PARTITION BY customer_id, terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 2591999 PRECEDING AND CURRENT ROW),
  customer_terminal_30d_before AS (PARTITION BY customer_id, terminal_id
    ORDER BY tx_time_seconds RANGE BETWEEN 2591999 PRECEDING AND 1 PRECEDING),
  terminal_1d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 691199 PRECEDING AND 604800 PRECEDING),
  terminal_7d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 1209599 PRECEDING AND 604800 PRECEDING),
  terminal_30d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 3196799 PRECEDING AND 604800 PRECEDING),
  terminal_now_1d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 86399 PRECEDING AND CURRENT ROW),
  terminal_now_7d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 604799 PRECEDING AND CURRENT ROW)
