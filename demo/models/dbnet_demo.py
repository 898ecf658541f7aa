# The demo text detector: MMOCR 0.6.3's DBNet r18 config, slimmed for training on 2 CPU
# cores (a quarter of the backbone's channels, an eighth of the neck's, 320-pixel crops) on
# pages that tools/train_demo_models.py renders. Pages are read at their long edge
# resized to 1024, so that a page's small print stays a few pixels apart.
import os.path as osp

import mmocr

_base_ = [osp.join(osp.dirname(mmocr.__file__), '.mim', 'configs', 'textdet', 'dbnet',
                   'dbnet_r18_fpnc_1200e_icdar2015.py')]

model = dict(
    # no ImageNet weights (they cannot be downloaded here): trained from scratch
    backbone=dict(base_channels=16, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], lateral_channels=32, out_channels=32),
    bbox_head=dict(in_channels=128))

img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='LoadTextAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    # MMOCR's transforms, the whole-page ones on 8-bit pixels and the rest on the crop
    # the page's long edge to 1024 (as in inference), then scaled by 0.6 to 1.4
    dict(type='ScaleAspectJitter', img_scale=[(1024, 1024)], ratio_range=(0.6, 1.4),
         aspect_ratio_range=(0.9, 1.1), multiscale_mode='value', long_size_bound=1024,
         short_size_bound=320, resize_type='long_short_bound', keep_ratio=False),
    dict(type='EastRandomCrop', target_size=(320, 320)),
    dict(type='ColorJitter', brightness=32.0 / 255, saturation=0.5),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='DBNetTargets', shrink_ratio=0.4),
    dict(type='Pad', size_divisor=32),
    dict(type='CustomFormatBundle',
         keys=['gt_shrink', 'gt_shrink_mask', 'gt_thr', 'gt_thr_mask'],
         visualize=dict(flag=False, boundary_key='gt_shrink')),
    dict(type='Collect', keys=['img', 'gt_shrink', 'gt_shrink_mask', 'gt_thr', 'gt_thr_mask'],
         meta_keys=['filename', 'ori_shape', 'img_shape']),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='MultiScaleFlipAug', img_scale=(1024, 1024), flip=False,
         transforms=[
             dict(type='Resize', keep_ratio=True),
             dict(type='Normalize', **img_norm_cfg),
             dict(type='Pad', size_divisor=32),
             dict(type='ImageToTensor', keys=['img']),
             dict(type='Collect', keys=['img']),
         ]),
]

# tools/train_demo_models.py writes the rendered pages here (relative to the repository)
data_root = 'work/demo-data/det'
train = dict(type='IcdarDataset', ann_file=f'{data_root}/train.json',
             img_prefix=f'{data_root}/train', pipeline=None)
test = dict(type='IcdarDataset', ann_file=f'{data_root}/held_out.json',
            img_prefix=f'{data_root}/held_out', pipeline=None)
data = dict(
    samples_per_gpu=8,
    workers_per_gpu=1,
    train=dict(datasets=[train], pipeline=train_pipeline),
    val=dict(datasets=[test], pipeline=test_pipeline),
    test=dict(datasets=[test], pipeline=test_pipeline))

optimizer = dict(_delete_=True, type='Adam', lr=1e-3)
lr_config = dict(_delete_=True, policy='poly', power=0.9, min_lr=1e-5, by_epoch=False)
runner = dict(_delete_=True, type='IterBasedRunner', max_iters=4000)
checkpoint_config = dict(interval=500, by_epoch=False, max_keep_ckpts=1, save_optimizer=False)
log_config = dict(interval=20)
evaluation = dict(interval=100000, metric='hmean-iou')
