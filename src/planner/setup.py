from setuptools import find_packages, setup

package_name = 'planner'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['schema/*.schema.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='avstack maintainers',
    maintainer_email='maintainers@avstack.dev',
    description=('The driving foundation model (driver, critic and analyst roles): transformer planner node,'
                 ' training and checkpoints.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'planner_node = planner.planner_node:main',
            'driving_process = planner.driving_process:main',
        ],
    },
)
