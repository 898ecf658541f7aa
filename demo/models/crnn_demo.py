# The demo text recognizer: MMOCR 0.6.3's CRNN config (CTC, BiLSTM decoder) reading
# MMOCR's DICT90 (digits, upper and lower case, ASCII punctuation), with a slim residual
# backbone in place of the 8.3 M-parameter VGG, so that it trains on 2 CPU cores, on word
# crops that tools/train_demo_models.py cuts from rendered pages. Crops are read at
# 32 x 160 pixels (40 columns), in training and in inference.
import os.path as osp

import mmocr

_base_ = [osp.join(osp.dirname(mmocr.__file__), '.mim', 'configs', 'textrecog', 'crnn',
                   'crnn_academic_dataset.py')]

model = dict(
    backbone=dict(
        _delete_=True, type='ResNet', in_channels=1, stem_channels=[32],
        block_cfgs=dict(type='BasicBlock'), arch_layers=[1, 1, 1, 1, 1],
        arch_channels=[32, 64, 96, 128, 128],
        strides=[(2, 2), (2, 2), (2, 1), (2, 1), (2, 1)]),  # 32 x 160 -> 1 x 40 columns
    decoder=dict(in_channels=128),
    label_convertor=dict(dict_type='DICT90', lower=False))

img_norm_cfg = dict(mean=[127], std=[127])
__load_and_resize = [  # the same in training and in inference
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='ResizeOCR', height=32, min_width=160, max_width=160, keep_aspect_ratio=False),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='DefaultFormatBundle'),
]
train_pipeline = __load_and_resize + [
    dict(type='Collect', keys=['img'],
         meta_keys=['filename', 'resize_shape', 'text', 'valid_ratio']),
]
test_pipeline = __load_and_resize + [
    dict(type='Collect', keys=['img'],
         meta_keys=['filename', 'resize_shape', 'valid_ratio', 'img_norm_cfg',
                    'ori_filename', 'img_shape', 'ori_shape']),
]

# tools/train_demo_models.py writes the word crops here (relative to the repository)
data_root = 'work/demo-data/recog'
loader = dict(type='AnnFileLoader', repeat=1, file_format='txt',
              parser=dict(type='LineStrParser', keys=['filename', 'text'], keys_idx=[0, 1],
                          separator=' '))
train = dict(type='OCRDataset', img_prefix=f'{data_root}/train',
             ann_file=f'{data_root}/train.txt', loader=loader, pipeline=None, test_mode=False)
test = dict(type='OCRDataset', img_prefix=f'{data_root}/held_out',
            ann_file=f'{data_root}/held_out.txt', loader=loader, pipeline=None, test_mode=True)
data = dict(
    samples_per_gpu=32,
    workers_per_gpu=1,
    train=dict(datasets=[train], pipeline=train_pipeline),
    val=dict(datasets=[test], pipeline=test_pipeline),
    test=dict(datasets=[test], pipeline=test_pipeline))

optimizer = dict(_delete_=True, type='Adam', lr=1e-3)
lr_config = dict(_delete_=True, policy='poly', power=0.9, min_lr=1e-5, by_epoch=False)
runner = dict(_delete_=True, type='IterBasedRunner', max_iters=5000)
checkpoint_config = dict(interval=500, by_epoch=False, max_keep_ckpts=1, save_optimizer=False)
log_config = dict(interval=50)
evaluation = dict(interval=100000, metric='acc')
cudnn_benchmark = False
