// A confirm dialog stays within Slack's limits whatever it is given (title 100, text 300, buttons 30).
import { describe, expect, it } from 'vitest';
import { button, withConfirm } from '../../src/slack/render/blocks.js';

describe('withConfirm', () => {
  it('clips every part to what Slack accepts, in plain text', () => {
    const element = withConfirm(button('a', 'Run again', '1:2'), {
      title: 't'.repeat(150),
      text: 'x'.repeat(1000),
      confirm: 'c'.repeat(50),
      deny: 'd'.repeat(50),
    });
    expect(element.value).toBe('1:2');
    const confirm = element.confirm;
    expect(confirm?.title?.text.length).toBe(100);
    expect(confirm?.text.text.length).toBe(300);
    expect(confirm?.confirm?.text.length).toBe(30);
    expect(confirm?.deny?.text.length).toBe(30);
    expect([confirm?.title?.type, confirm?.text.type, confirm?.confirm?.type, confirm?.deny?.type]).toEqual([
      'plain_text',
      'plain_text',
      'plain_text',
      'plain_text',
    ]);
  });

  it('keeps short parts as they are, with Cancel as the default deny', () => {
    const confirm = withConfirm(button('a', 'Run again', '1'), { title: 'Run it again?', text: 'Starts run 2.', confirm: 'Run again' }).confirm;
    expect(confirm?.title?.text).toBe('Run it again?');
    expect(confirm?.text.text).toBe('Starts run 2.');
    expect(confirm?.deny?.text).toBe('Cancel');
  });
});
