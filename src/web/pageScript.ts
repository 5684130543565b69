/**
 * The task page's only script (inline, allowed by its CSP nonce). It follows the stream: output
 * HTML is appended (the server escaped and coloured it), the live section is swapped for the
 * server's rendering, and on `end` the stream is closed so EventSource does not reconnect.
 * Plain ES2017 so it runs as written in any current browser; no external assets.
 */
export const PAGE_SCRIPT = `
(function () {
  var main = document.getElementById('task');
  var url = main && main.getAttribute('data-stream');
  if (!url || typeof EventSource !== 'function') return;
  var out = document.getElementById('output');
  var note = document.getElementById('live-note');
  var say = function (text) { if (note) note.textContent = text; };
  var source = new EventSource(url);
  source.addEventListener('output', function (e) {
    // Keep following the end only if the reader has not scrolled up to read something.
    var follow = out.scrollHeight - out.scrollTop - out.clientHeight < 40;
    out.insertAdjacentHTML('beforeend', JSON.parse(e.data));
    if (follow) out.scrollTop = out.scrollHeight;
  });
  source.addEventListener('status', function (e) {
    var s = JSON.parse(e.data);
    document.getElementById('live').innerHTML = s.live;
    if (s.head) document.getElementById('head').innerHTML = s.head;
    out.setAttribute('data-empty', s.emptyNote);
    document.title = document.title.replace(/\\([^)]*\\)/, '(' + s.status + ')');
  });
  source.addEventListener('end', function (e) {
    source.close();
    var d = {};
    try { d = JSON.parse(e.data); } catch (x) { d = {}; }
    // The link or the reader's access went away while the page was open.
    say(d.revoked ? 'no longer live: open the task again from Slack' : 'finished');
  });
  source.onopen = function () { say('live'); };
  source.onerror = function () { if (source.readyState !== 2) say('reconnecting…'); };
})();
`;
