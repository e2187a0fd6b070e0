import { api } from './api.js';

const form = document.getElementById('login-form');
const errorBox = document.getElementById('login-error');
const notice = document.getElementById('login-notice');
const submit = document.getElementById('login-submit');

const params = new URLSearchParams(window.location.search);
if (params.has('expired')) {
  notice.textContent = 'Your session ended. Sign in again to continue.';
  notice.hidden = false;
} else if (params.has('signedout')) {
  notice.textContent = 'You are signed out.';
  notice.hidden = false;
}
document.getElementById('login-id').focus();

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  errorBox.hidden = true;
  const id = form.elements.id.value.trim();
  const password = form.elements.password.value;
  if (!id || !password) {
    errorBox.textContent = !id ? 'Enter your reviewer id.' : 'Enter your password.';
    errorBox.hidden = false;
    return;
  }
  submit.disabled = true;
  submit.textContent = 'Signing in…';
  try {
    await api('/api/login', { method: 'POST', body: { id, password } });
    // Only known pages: an address in `next` must not send a reviewer elsewhere.
    window.location.assign(params.get('next') === '/inspector' ? '/inspector' : '/');
  } catch (err) {
    errorBox.textContent =
      err.code === 'auth.invalid_credentials' ? 'Unknown reviewer id or wrong password.' : err.code === 'auth.throttled' ? err.message.replace(/^./, (c) => c.toUpperCase()) : err.message;
    errorBox.hidden = false;
    form.elements.password.select();
  } finally {
    submit.disabled = false;
    submit.textContent = 'Sign in';
  }
});
