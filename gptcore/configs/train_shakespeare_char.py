# The tutorial's starting point: a 10.65M-parameter character-level model of Tiny Shakespeare.
# Same values as nanoGPT's config/train_shakespeare_char.py. gptcore reads this file as data
# (name = literal lines only); it is never executed.

out_dir = 'out-shakespeare-char'
eval_interval = 250  # frequent: on 1M characters the model starts to overfit early
eval_iters = 200
log_interval = 10

always_save_checkpoint = False  # keep the checkpoint with the best val loss, not the latest

wandb_log = False
wandb_project = 'shakespeare-char'
wandb_run_name = 'mini-gpt'

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256  # characters of context

n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2

learning_rate = 1e-3  # a small network tolerates a high rate
max_iters = 5000
lr_decay_iters = 5000  # usually equal to max_iters
min_lr = 1e-4  # usually learning_rate / 10
beta2 = 0.99  # few tokens per step, so average the second moment over more steps

warmup_iters = 100
