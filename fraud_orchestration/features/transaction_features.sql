-- The transaction features: one row per transaction of the view `transactions`
-- (transaction_id, tx_datetime, tx_time_seconds, customer_id, terminal_id, tx_amount, tx_fraud).
--
-- Written in the dialect DuckDB and Spark SQL share; both engines run this exact text.
-- Windows are RANGE frames on whole epoch seconds, so "w days" is the half-open interval
-- (t - w days, t]:  RANGE BETWEEN w*86400-1 PRECEDING AND CURRENT ROW. Transactions of the
-- same card in the same second are peers and see each other.
-- Terminal windows sit behind the 7-day label delay, (t - 7 - w days, t - 7 days]: a label is
-- only known a week after the transaction, so a feature at time t may use labels up to t - 7d.
-- Weekday arithmetic on epoch days (1970-01-01 was a Thursday, weekday 3 with Monday = 0)
-- keeps the text portable: the engines number weekdays differently.
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
  AVG(tx_amount) OVER customer_1d AS customer_id_avg_amount_1day_window,
  COUNT(*) OVER customer_7d AS customer_id_nb_tx_7day_window,
  AVG(tx_amount) OVER customer_7d AS customer_id_avg_amount_7day_window,
  COUNT(*) OVER customer_30d AS customer_id_nb_tx_30day_window,
  AVG(tx_amount) OVER customer_30d AS customer_id_avg_amount_30day_window,
  COUNT(*) OVER terminal_1d AS terminal_id_nb_tx_1day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER terminal_1d AS DOUBLE)
           / NULLIF(COUNT(*) OVER terminal_1d, 0), 0.0) AS terminal_id_risk_1day_window,
  COUNT(*) OVER terminal_7d AS terminal_id_nb_tx_7day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER terminal_7d AS DOUBLE)
           / NULLIF(COUNT(*) OVER terminal_7d, 0), 0.0) AS terminal_id_risk_7day_window,
  COUNT(*) OVER terminal_30d AS terminal_id_nb_tx_30day_window,
  COALESCE(CAST(SUM(tx_fraud) OVER terminal_30d AS DOUBLE)
           / NULLIF(COUNT(*) OVER terminal_30d, 0), 0.0) AS terminal_id_risk_30day_window,
  tx_fraud
FROM transactions
WINDOW
  customer_1d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 86399 PRECEDING AND CURRENT ROW),
  customer_7d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 604799 PRECEDING AND CURRENT ROW),
  customer_30d AS (PARTITION BY customer_id ORDER BY tx_time_seconds
    RANGE BETWEEN 2591999 PRECEDING AND CURRENT ROW),
  terminal_1d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 691199 PRECEDING AND 604800 PRECEDING),
  terminal_7d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 1209599 PRECEDING AND 604800 PRECEDING),
  terminal_30d AS (PARTITION BY terminal_id ORDER BY tx_time_seconds
    RANGE BETWEEN 3196799 PRECEDING AND 604800 PRECEDING)
