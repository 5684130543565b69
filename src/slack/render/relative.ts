/** Times as Slack shows them to each reader: relative ("5 minutes ago") in their own zone. */

/** `<!date^…^{ago}|fallback>`: Slack renders "3 minutes ago" / "in 10 minutes"; old clients see the ISO time. */
export function slackAgo(date: Date): string {
  const unix = Math.floor(date.getTime() / 1000);
  return `<!date^${unix}^{ago}|${date.toISOString().replace(/\.\d+Z$/, 'Z')}>`;
}
