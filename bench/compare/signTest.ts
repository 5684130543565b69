/**
 * One-sided sign test, for paired rounds of two systems (bench:compare's throughput): were the two
 * level, each round would favour either by a fair coin's toss. Answers the chance of `k` or more
 * of `n` such tosses favouring the first: a small value says the lead is not the machine's luck.
 */
export function signTestP(k: number, n: number): number {
  if (!Number.isInteger(k) || !Number.isInteger(n) || n < 0 || k < 0 || k > n) throw new Error(`signTestP: need whole 0 <= k <= n, got k=${k}, n=${n}`);
  let choose = 1;
  let tail = 0;
  for (let i = 0; i <= n; i++) {
    if (i >= k) tail += choose;
    choose = (choose * (n - i)) / (i + 1);
  }
  return tail / 2 ** n;
}
