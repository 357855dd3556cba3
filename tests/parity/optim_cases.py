"""The optimisers and schedules families (optimisers.json, schedules.json)."""

import torch

from common import Rng, enc, enc_all


# ---------------------------------------------------------------------------------------------
# Optimisers: trajectories of a few steps on a fixed quadratic, the gradients given per step

OPTIMISERS = []


def trajectory(name, kind, groups, steps=6, skip=None, lrs=None):
    """`kind` (a torch.optim class name) over parameter groups [(names, config)], config in
    PyTorch's keyword names; skip: {step: name} leaves that parameter without a gradient at that
    step; lrs: {step: [lr per group]} set before that step."""
    rng = Rng(name)
    shapes = {"w": (2, 3), "b": (5,)}
    params = {k: rng.normal(*v).requires_grad_() for k, v in shapes.items()}
    initial = {k: v.detach().clone() for k, v in params.items()}
    # f(p) = Σ c·(p − t)²/2 + s·p: gradients that change with p, and change sign
    c = {k: rng.uniform(0.5, 2.0, *v) for k, v in shapes.items()}
    t = {k: rng.normal(*v) for k, v in shapes.items()}
    sl = {k: 0.3 * rng.normal(*v) for k, v in shapes.items()}
    # the first group's settings are also the defaults: torch's Adagrad takes its initial
    # accumulator from the defaults only
    opt = getattr(torch.optim, kind)([{"params": [params[n] for n in names], **cfg} for names, cfg in groups],
                                     foreach=False, **groups[0][1])
    given, path, rates = [], [], []
    for step in range(steps):
        if lrs and step in lrs:
            for g, lr in zip(opt.param_groups, lrs[step]):
                g["lr"] = lr
        rates.append([g["lr"] for g in opt.param_groups])
        grads = {}
        for k, p in params.items():
            if skip and skip.get(step) == k:
                p.grad = None
                continue
            p.grad = (c[k] * (p.detach() - t[k]) + sl[k]).clone()
            grads[k] = p.grad.clone()
        opt.step()
        given.append(enc_all(grads))
        path.append(enc_all({k: v.detach() for k, v in params.items()}))
    OPTIMISERS.append(
        {
            "name": name,
            "optimizer": kind,
            "groups": [{"params": names, "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}}
                       for names, cfg in groups],
            "params": enc_all(initial),
            "lrs": rates,
            "grads": given,
            "trajectory": path,
        }
    )


def optimisers():
    both = ["w", "b"]
    sgd = [
        ("plain", {"lr": 0.1}),
        ("momentum", {"lr": 0.1, "momentum": 0.9}),
        ("momentum_dampening", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
        ("nesterov_weight_decay", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        ("weight_decay", {"lr": 0.2, "weight_decay": 0.1}),
    ]
    for label, cfg in sgd:
        trajectory(f"SGD/{label}", "SGD", [(both, cfg)])
    adam = [
        ("default", {"lr": 0.01}),
        ("betas_eps", {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6}),
        ("weight_decay", {"lr": 0.02, "weight_decay": 0.1}),
        ("amsgrad", {"lr": 0.05, "amsgrad": True}),
        ("amsgrad_weight_decay", {"lr": 0.03, "amsgrad": True, "weight_decay": 0.05, "betas": (0.7, 0.9)}),
    ]
    for label, cfg in adam:
        trajectory(f"Adam/{label}", "Adam", [(both, cfg)])
    adamw = [
        ("default", {"lr": 0.01}),
        ("weight_decay", {"lr": 0.05, "weight_decay": 0.2, "betas": (0.85, 0.99)}),
        ("amsgrad", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ]
    for label, cfg in adamw:
        trajectory(f"AdamW/{label}", "AdamW", [(both, cfg)])
    adagrad = [
        ("default", {"lr": 0.1}),
        ("lr_decay_weight_decay", {"lr": 0.2, "lr_decay": 0.05, "weight_decay": 0.1}),
        ("initial_accumulator", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
    ]
    for label, cfg in adagrad:
        trajectory(f"Adagrad/{label}", "Adagrad", [(both, cfg)])
    rmsprop = [
        ("default", {"lr": 0.01}),
        ("alpha_eps", {"lr": 0.02, "alpha": 0.9, "eps": 1e-6}),
        ("centered", {"lr": 0.01, "centered": True}),
        ("momentum", {"lr": 0.01, "momentum": 0.8}),
        ("centered_momentum_weight_decay", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ]
    for label, cfg in rmsprop:
        trajectory(f"RMSprop/{label}", "RMSprop", [(both, cfg)])
    # two groups with their own settings; a parameter without a gradient at a step is left
    # alone (its step count too); a learning rate changed between steps
    trajectory("SGD/groups_skip_lr_change", "SGD",
               [(["w"], {"lr": 0.1, "momentum": 0.9}), (["b"], {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1})],
               skip={2: "b"}, lrs={4: [0.02, 0.2]})
    trajectory("Adam/groups_skip_lr_change", "Adam",
               [(["w"], {"lr": 0.01}), (["b"], {"lr": 0.03, "amsgrad": True})], skip={1: "w", 3: "b"}, lrs={3: [0.05, 0.01]})
    trajectory("AdamW/skip", "AdamW", [(both, {"lr": 0.02, "weight_decay": 0.1})], skip={2: "w"})
    trajectory("Adagrad/skip_lr_change", "Adagrad", [(both, {"lr": 0.1, "lr_decay": 0.1})], skip={1: "b"}, lrs={3: [0.3]})
    trajectory("RMSprop/skip", "RMSprop", [(both, {"lr": 0.01, "centered": True, "momentum": 0.3})], skip={0: "b"})


def clipping():
    """torch.nn.utils' gradient clipping over the same two parameters."""
    def clip(name, kind, config, scale):
        rng = Rng(name)
        params = {"w": torch.zeros(2, 3, requires_grad=True), "b": torch.zeros(5, requires_grad=True)}
        for p in params.values():
            p.grad = rng.grid(*p.shape, half_width=1) if scale is None else scale * rng.normal(*p.shape)
        given = enc_all({k: p.grad for k, p in params.items()})
        result = getattr(torch.nn.utils, kind)(list(params.values()), **config)
        case = {"name": name, "clip": kind, "config": config, "grads": given,
                "clipped": enc_all({k: p.grad for k, p in params.items()})}
        if result is not None:
            case["total_norm"] = enc(result)
        OPTIMISERS.append(case)

    clip("clip_grad_norm_/clipped", "clip_grad_norm_", {"max_norm": 1.0}, 1.0)
    clip("clip_grad_norm_/under_max", "clip_grad_norm_", {"max_norm": 10.0}, 0.5)
    # the grid puts gradients exactly on ±clip_value
    clip("clip_grad_value_", "clip_grad_value_", {"clip_value": 0.5}, None)


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules: the rates of two parameter groups, epoch by epoch

SCHEDULES = []
BASE_LRS = [0.1, 0.04]


def optimizer_for_schedule():
    return torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in BASE_LRS])


def schedule(name, kind, config, make, epochs=12):
    """`kind` with `config` (PyTorch's keyword names); make(optimizer) is the PyTorch scheduler."""
    opt = optimizer_for_schedule()
    sched = make(opt)
    lrs = [[g["lr"] for g in opt.param_groups]]
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    SCHEDULES.append({"name": name, "schedule": kind, "config": config, "base_lrs": BASE_LRS, "lrs": lrs})


def plateau(name, config, metrics):
    opt = optimizer_for_schedule()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **config)
    lrs = []
    for m in metrics:
        opt.step()
        sched.step(m)
        lrs.append([g["lr"] for g in opt.param_groups])
    SCHEDULES.append({"name": name, "schedule": "ReduceLROnPlateau", "config": config, "base_lrs": BASE_LRS,
                      "metrics": metrics, "lrs": lrs})


def schedules():
    S_ = torch.optim.lr_scheduler
    for c in [{"step_size": 3, "gamma": 0.5}, {"step_size": 1, "gamma": 0.9}]:
        schedule(f"StepLR/{c['step_size']}_{c['gamma']}", "StepLR", c, lambda o, c=c: S_.StepLR(o, **c))
    c = {"milestones": [2, 5, 9], "gamma": 0.3}
    schedule("MultiStepLR", "MultiStepLR", c, lambda o: S_.MultiStepLR(o, **c))
    c = {"gamma": 0.8}
    schedule("ExponentialLR", "ExponentialLR", c, lambda o: S_.ExponentialLR(o, **c))
    for c in [{"T_max": 5, "eta_min": 0.0}, {"T_max": 4, "eta_min": 0.01}]:
        # past T_max the rate climbs back, as PyTorch's does
        schedule(f"CosineAnnealingLR/{c['T_max']}_{c['eta_min']}", "CosineAnnealingLR", c,
                 lambda o, c=c: S_.CosineAnnealingLR(o, **c), epochs=2 * c["T_max"] + 3)
    c = {"start_factor": 0.25, "total_iters": 4}
    schedule("LinearLR", "LinearLR", c, lambda o: S_.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4))
    # warm-up then another schedule: SequentialLR(LinearLR, ...) with the milestone at the warm-up's end
    for then_kind, then_cfg, then in [
        ("CosineAnnealingLR", {"T_max": 6, "eta_min": 0.001}, lambda o: S_.CosineAnnealingLR(o, T_max=6, eta_min=0.001)),
        ("StepLR", {"step_size": 2, "gamma": 0.5}, lambda o: S_.StepLR(o, step_size=2, gamma=0.5)),
        ("ExponentialLR", {"gamma": 0.7}, lambda o: S_.ExponentialLR(o, gamma=0.7)),
    ]:
        c = {"start_factor": 0.2, "total_iters": 3, "then": {"schedule": then_kind, "config": then_cfg}}
        schedule(f"SequentialLR/LinearLR_{then_kind}", "LinearLR", c,
                 lambda o, then=then: S_.SequentialLR(o, [S_.LinearLR(o, 0.2, 1.0, 3), then(o)], milestones=[3]))
    schedule("LambdaLR/constant", "Constant", {}, lambda o: S_.LambdaLR(o, lambda e: 1.0))
    falling = [1.0, 0.9, 0.91, 0.905, 0.9, 0.89, 0.95, 0.96, 0.97, 0.98, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9]
    plateau("ReduceLROnPlateau/min", {"mode": "min", "factor": 0.5, "patience": 2}, falling)
    plateau("ReduceLROnPlateau/min_abs_cooldown_min_lr",
            {"mode": "min", "factor": 0.3, "patience": 1, "threshold": 0.01, "threshold_mode": "abs", "cooldown": 2,
             "min_lr": 0.005}, falling)
    rising = [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7, 0.71, 0.72, 0.72, 0.72, 0.72]
    plateau("ReduceLROnPlateau/max_rel", {"mode": "max", "factor": 0.1, "patience": 1, "threshold": 0.05}, rising)


def optimiser_cases():
    optimisers()
    clipping()
    return OPTIMISERS


def schedule_cases():
    schedules()
    return SCHEDULES
