import { h, replace } from './dom.js';

/** A short message in the corner. kind: info | ok | warn | error. */
export function toast(message, kind = 'info', { title, timeout = 5000 } = {}) {
  const root = document.getElementById('toasts');
  const el = h(
    `div.toast.toast-${kind}`,
    { role: kind === 'error' ? 'alert' : 'status' },
    title ? h('strong.toast-title', title) : null,
    h('div.toast-body', message),
  );
  const close = () => {
    el.classList.add('toast-leaving');
    setTimeout(() => el.remove(), 200);
  };
  el.append(h('button.toast-close', { type: 'button', 'aria-label': 'Dismiss', onclick: close }, '×'));
  root.append(el);
  // Three at most: the oldest make way.
  while (root.children.length > 3) root.firstElementChild.remove();
  if (timeout) setTimeout(close, timeout);
  return close;
}

let openModal = null;

export function modalOpen() {
  return openModal !== null;
}

/**
 * A modal dialog. `body` is a node; `actions` are { label, kind, onClick, key } buttons. Escape
 * closes; focus stays inside. Returns { close, el }.
 */
export function modal({ title, subtitle, body, actions = [], wide = false, onClose }) {
  closeModal();
  const root = document.getElementById('modal-root');
  const previous = document.activeElement;
  const footer = h('div.modal-foot');
  const dialog = h(
    `div.modal${wide ? '.modal-wide' : ''}`,
    { role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'modal-title' },
    h(
      'div.modal-head',
      h('div', h('h2#modal-title', title), subtitle ? h('p.modal-sub', subtitle) : null),
      h('button.modal-x', { type: 'button', 'aria-label': 'Close', onclick: () => close() }, '×'),
    ),
    h('div.modal-body', body),
    footer,
  );
  const backdrop = h(
    'div.backdrop',
    {
      onmousedown: (e) => {
        if (e.target === backdrop) close();
      },
    },
    dialog,
  );
  const setActions = (list) => {
    replace(
      footer,
      list.map((a) =>
        h(
          `button.btn.btn-${a.kind || 'secondary'}`,
          { type: 'button', disabled: a.disabled, dataset: a.id ? { action: a.id } : {}, onclick: () => a.onClick() },
          a.label,
          a.key ? h('kbd', a.key) : null,
        ),
      ),
    );
  };
  setActions(actions);
  const onKey = (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      close();
    } else if (e.key === 'Tab') {
      const focusable = [
        ...dialog.querySelectorAll('button, input, select, textarea, [tabindex]:not([tabindex="-1"])'),
      ].filter((x) => !x.disabled && x.offsetParent !== null);
      if (!focusable.length) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }
  };
  document.addEventListener('keydown', onKey, true);
  root.append(backdrop);
  const close = () => {
    if (openModal !== handle) return;
    openModal = null;
    document.removeEventListener('keydown', onKey, true);
    backdrop.remove();
    if (onClose) onClose();
    if (previous && previous.focus) previous.focus();
  };
  const handle = { close, el: dialog, setActions };
  openModal = handle;
  setTimeout(() => {
    const first = dialog.querySelector('[autofocus], input:not([readonly]), textarea, select');
    (first || dialog.querySelector('.modal-foot .btn-primary') || dialog).focus();
  }, 0);
  return handle;
}

export function closeModal() {
  if (openModal) openModal.close();
}

// Keys: '|' separates alternatives, a space a sequence ("g q": g, then q).
const SHORTCUTS = [
  [
    'Queue',
    [
      ['j|k', 'Next / previous case'],
      ['Enter|o', 'Open the selected case'],
      ['c', 'Claim the selected case'],
      ['/', 'Search'],
      ['n|p', 'Next / previous page'],
      ['1–9', 'Switch queue (1 = all my queues)'],
    ],
  ],
  [
    'Case',
    [
      ['c', 'Claim'],
      ['u', 'Release the claim'],
      ['a', 'Approve'],
      ['m', 'Modify the proposed actions'],
      ['r', 'Reject with a reason'],
      ['e', 'Escalate to the next tier'],
      ['j|k', 'Next / previous case in the queue'],
      ['Esc', 'Back to the queue'],
    ],
  ],
  [
    'Anywhere',
    [
      ['g q', 'Go to the queue'],
      ['g d', 'Go to the dashboards'],
      ['?', 'This help'],
    ],
  ],
];

function keys(spec) {
  return spec
    .split('|')
    .flatMap((alt, i) => [
      i ? h('span.faint', ' / ') : null,
      alt.split(' ').flatMap((k, j) => [j ? ' ' : null, h('kbd', k)]),
    ]);
}

export function showHelp() {
  const body = h(
    'div.help-grid',
    SHORTCUTS.map(([group, rows]) =>
      h(
        'section',
        h('h3', group),
        h(
          'dl.shortcuts',
          rows.map(([k, v]) => [h('dt', keys(k)), h('dd', v)]),
        ),
      ),
    ),
  );
  modal({
    title: 'Keyboard shortcuts',
    body,
    actions: [{ label: 'Close', kind: 'secondary', onClick: closeModal }],
    wide: true,
  });
}
