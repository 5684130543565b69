/**
 * Slack sends command text with `&`, `<` and `>` escaped as HTML entities, and wraps links,
 * mentions and channels it recognised in `<...>` markup. A raw `<` can therefore only be
 * markup: unwrap it to what the user typed, then decode the entities.
 */
export function decodeSlackText(text: string): string {
  const unwrapped = text.replace(/<([^<>]*)>/g, (_whole, inner: string) => {
    const bar = inner.indexOf('|');
    if (bar >= 0) return inner.slice(bar + 1);
    return inner;
  });
  return unwrapped.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** Escapes text for Slack mrkdwn and plain message text. */
export function escapeSlackText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
